"""Emergency procedures as data: their alerts are P1 incidents that page, security incidents
reach the security team, and the result says what is left to people."""

from __future__ import annotations

from datetime import UTC, datetime

from runbook.alerts.models import AlertKind, Channel, Severity, make_alert
from runbook.alerts.routing import route
from runbook.alerts.settings import AlertSettings
from runbook.emergency import (
    ROTATION_PENDING,
    EmergencyResult,
    EmergencyStatus,
    Procedure,
    isolation_failed_alert,
    outage_alert,
    outage_rollback_failed_alert,
    security_alert,
    to_markdown,
)
from runbook.incidents import Priority, open_incident

ALL = frozenset(Channel)


def settings(**changes: object) -> AlertSettings:
    return AlertSettings(_env_file=None, **changes)  # type: ignore[arg-type]


def test_outage_pages_before_the_rollback_and_a_failed_rollback_pages_again() -> None:
    page = outage_alert("shop", "production", "users see 500s", None)
    failed = outage_rollback_failed_alert("shop", "production", "no standby", "r2", None)

    assert page.severity is Severity.CRITICAL and "rolling back" in page.summary
    assert page.details == "users see 500s"
    assert open_incident(page, datetime.now(UTC)).priority is Priority.P1
    assert Channel.PAGERDUTY in route(page, settings().routing_for_alert(page), ALL).channels
    assert failed.kind is AlertKind.ROLLBACK_FAILED and failed.dedup_key != page.dedup_key
    assert "NOT rolled back (no standby); live now r2" in failed.summary
    assert open_incident(failed, datetime.now(UTC)).priority is Priority.P1


def test_security_alert_is_p1_anywhere_and_says_rotation_is_not_done() -> None:
    alert = security_alert("shop", "staging", "token leaked", None)
    failed = isolation_failed_alert("shop", "staging", "router down", None)

    assert open_incident(alert, datetime.now(UTC)).priority is Priority.P1
    assert "zero traffic" in alert.summary
    assert ROTATION_PENDING in alert.details
    assert failed.dedup_key != alert.dedup_key and "isolate by hand" in failed.summary


def test_security_incidents_reach_the_security_team_other_alerts_do_not() -> None:
    configured = settings(security_email_to="sec@example.org, ciso@example.org",
                          security_slack_channel="#security")
    security = security_alert("shop", "production", "leak", None)
    outage = make_alert(AlertKind.PRODUCTION_DOWN, "shop", "production", "down")

    routing = configured.routing_for_alert(security)
    assert routing.email_to == ["sec@example.org", "ciso@example.org"]
    assert routing.slack_channel == "#security"
    assert Channel.EMAIL in route(security, routing, ALL).channels
    assert configured.routing_for_alert(outage).email_to == []
    assert configured.routing_for_alert(outage).slack_channel is None


def test_result_markdown_lists_what_was_done_and_what_is_left() -> None:
    result = EmergencyResult(
        procedure=Procedure.SECURITY_INCIDENT, status=EmergencyStatus.MITIGATED,
        service="shop", environment="production", reason="leak", incident_id="INC-1",
        priority="P1", serving_before="r1", actions=["service isolated"],
        pending=[ROTATION_PENDING], alerts_delivered=2, alerts_waiting=1,
    )

    markdown = to_markdown(result)

    assert markdown.startswith("# Security incident: shop/production — mitigated")
    assert "| INC-1 (P1) | r1 | nothing | 2 — 1 waiting in the outbox |" in markdown
    assert "1. service isolated" in markdown and f"- **{ROTATION_PENDING}**" in markdown
