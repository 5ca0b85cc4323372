"""The runbook's incident table, row by row, and the incident record's life."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbook.alerts.models import AlertKind, Severity, make_alert
from runbook.incidents import (
    Category,
    IncidentStatus,
    Priority,
    Step,
    acknowledge,
    classify,
    open_incident,
    resolve,
    review_markdown,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

# Every row of the runbook's classification, in production and outside it.
TABLE = [
    (Category.PRODUCTION_DOWN, "production", Priority.P1, 15),
    (Category.SECURITY_VULNERABILITY, "production", Priority.P1, 15),
    (Category.DATA_BREACH, "production", Priority.P1, 15),
    (Category.DEGRADED_PERFORMANCE, "production", Priority.P2, 60),
    (Category.NON_CRITICAL_SECURITY, "production", Priority.P2, 60),
    (Category.DEPLOYMENT_FAILURE, "production", Priority.P2, 60),
    (Category.TEST_FAILURE, "production", Priority.P3, 240),
    (Category.MINOR_PERFORMANCE, "production", Priority.P3, 240),
    # Non-production is P3, except security: that code is on its way to production.
    (Category.SECURITY_VULNERABILITY, "staging", Priority.P1, 15),
    (Category.DATA_BREACH, "staging", Priority.P1, 15),
    (Category.PRODUCTION_DOWN, "staging", Priority.P3, 240),
    (Category.DEGRADED_PERFORMANCE, "staging", Priority.P3, 240),
    (Category.NON_CRITICAL_SECURITY, "staging", Priority.P3, 240),
    (Category.DEPLOYMENT_FAILURE, "staging", Priority.P3, 240),
    (Category.TEST_FAILURE, "staging", Priority.P3, 240),
    (Category.MINOR_PERFORMANCE, "staging", Priority.P3, 240),
    # The quarterly review is tracked like an incident, never urgent.
    (Category.RUNBOOK_REVIEW, "production", Priority.P3, 240),
    (Category.RUNBOOK_REVIEW, "staging", Priority.P3, 240),
]


def test_the_table_covers_every_category_in_both_kinds_of_environment() -> None:
    assert {(c, e) for c, e, _, _ in TABLE} == {(c, e) for c in Category
                                                for e in ("production", "staging")}


@pytest.mark.parametrize(("category", "environment", "priority", "minutes"), TABLE)
def test_classification_row(category: Category, environment: str, priority: Priority,
                            minutes: int) -> None:
    assert classify(category, environment) is priority
    from runbook.incidents import ResponseTimes

    assert ResponseTimes().deadline(priority) == timedelta(minutes=minutes)


@pytest.mark.parametrize(("kind", "severity", "environment", "priority"), [
    (AlertKind.ROLLBACK, None, "production", Priority.P2),
    (AlertKind.DEPLOYMENT_FAILURE, None, "production", Priority.P2),
    (AlertKind.PIPELINE_FAILURE, None, "staging", Priority.P3),
    (AlertKind.VULNERABILITY, None, "staging", Priority.P1),
    (AlertKind.PRODUCTION_DOWN, None, "production", Priority.P1),
    (AlertKind.HIGH_ERROR_RATE, Severity.WARNING, "production", Priority.P3),
    (AlertKind.PERFORMANCE_DEGRADATION, None, "production", Priority.P2),
    (AlertKind.TEST_FAILURE, None, "production", Priority.P3),
])
def test_alert_opens_incident_of_its_priority_with_deadline_and_steps(
    kind: AlertKind, severity: Severity | None, environment: str, priority: Priority
) -> None:
    alert = make_alert(kind, "shop", environment, "it broke", severity=severity)
    incident = open_incident(alert, NOW)
    assert incident.priority is priority
    assert [s.step for s in incident.steps] == list(Step)
    assert incident.respond_by > NOW and incident.dedup_key == alert.dedup_key


def test_acknowledge_resolve_and_review() -> None:
    incident = open_incident(make_alert(AlertKind.ROLLBACK, "shop", "production", "bad"), NOW)
    assert incident.overdue(NOW + timedelta(hours=2))
    acked = acknowledge(incident, NOW + timedelta(minutes=5), "alice")
    assert acked.status is IncidentStatus.ACKNOWLEDGED
    assert not acked.overdue(NOW + timedelta(days=1))
    done = resolve(acked, NOW + timedelta(minutes=30), "v3 released")
    assert done.status is IncidentStatus.RESOLVED
    review = review_markdown(done)
    assert "5.0 min (met" in review and "30.0 min" in review and "v3 released" in review
