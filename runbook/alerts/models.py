"""What an alert is: the typed record every channel, the outbox and the receiver share."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"


class AlertKind(StrEnum):
    """The runbook's alert lists (critical first, then warning), plus what the pipeline adds."""

    PIPELINE_FAILURE = "pipeline_failure"
    DEPLOYMENT_FAILURE = "deployment_failure"
    ROLLBACK = "rollback"
    ROLLBACK_FAILED = "rollback_failed"
    """The switch back failed: the summary names what is live now. P1 in production."""
    VULNERABILITY = "vulnerability"
    PERFORMANCE_DEGRADATION = "performance_degradation"
    PRODUCTION_DOWN = "production_down"
    SECURITY_INCIDENT = "security_incident"
    TEST_FAILURE = "test_failure"
    COVERAGE_BELOW_THRESHOLD = "coverage_below_threshold"
    HIGH_ERROR_RATE = "high_error_rate"
    HIGH_RESOURCE_USAGE = "high_resource_usage"
    SLOW_RESPONSES = "slow_responses"


DEFAULT_SEVERITY: dict[AlertKind, Severity] = {
    AlertKind.PIPELINE_FAILURE: Severity.CRITICAL,
    AlertKind.DEPLOYMENT_FAILURE: Severity.CRITICAL,
    AlertKind.ROLLBACK: Severity.CRITICAL,
    AlertKind.ROLLBACK_FAILED: Severity.CRITICAL,
    AlertKind.VULNERABILITY: Severity.CRITICAL,
    AlertKind.PERFORMANCE_DEGRADATION: Severity.CRITICAL,
    AlertKind.PRODUCTION_DOWN: Severity.CRITICAL,
    AlertKind.SECURITY_INCIDENT: Severity.CRITICAL,
    AlertKind.TEST_FAILURE: Severity.WARNING,
    AlertKind.COVERAGE_BELOW_THRESHOLD: Severity.WARNING,
    AlertKind.HIGH_ERROR_RATE: Severity.WARNING,
    AlertKind.HIGH_RESOURCE_USAGE: Severity.WARNING,
    AlertKind.SLOW_RESPONSES: Severity.WARNING,
}
"""The runbook's severity of each kind: critical = pipeline failure, deployment failure,
vulnerability found, performance degraded; warning = coverage, error rate, resources, slow."""


class AlertAction(StrEnum):
    TRIGGER = "trigger"  # the problem is there
    ACKNOWLEDGE = "acknowledge"  # someone took the problem with the same dedup key
    RESOLVE = "resolve"  # the problem with the same dedup key is over


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"
    PAGERDUTY = "pagerduty"


class Alert(BaseModel):
    """One notification about one problem of one service in one environment."""

    kind: AlertKind
    severity: Severity
    service: str
    environment: str
    summary: str
    details: str = ""
    link: str | None = None
    """Where to look: the Prefect flow run, or the Prometheus graph of a rule."""
    dedup_key: str = Field(max_length=255)
    """Same problem, same key: PagerDuty deduplicates on it and resolves with it."""
    action: AlertAction = AlertAction.TRIGGER
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def acknowledgement(self, by: str) -> Alert:
        """The alert saying someone took this one (same key, same channels): PagerDuty stops
        escalating, Slack shows who."""
        return self.model_copy(update={
            "action": AlertAction.ACKNOWLEDGE,
            "summary": f"acknowledged by {by}: {self.summary}",
            "created_at": datetime.now(UTC),
        })

    def resolution(self, summary: str | None = None) -> Alert:
        """The alert that closes this one (same key, same channels)."""
        return self.model_copy(update={
            "action": AlertAction.RESOLVE,
            "summary": summary or f"resolved: {self.summary}",
            "created_at": datetime.now(UTC),
        })


def state_label(alert: Alert) -> str:
    """What a message's title says: RESOLVED, ACKNOWLEDGED, or the severity of a trigger."""
    if alert.action is AlertAction.TRIGGER:
        return alert.severity.value.upper()
    return {AlertAction.RESOLVE: "RESOLVED", AlertAction.ACKNOWLEDGE: "ACKNOWLEDGED"}[
        alert.action]


def dedup_key(service: str, environment: str, kind: AlertKind, cause: str = "") -> str:
    """The stable key of one problem of one service in one environment: its kind and its
    cause (a short slug such as ``secret-overdue`` or the failed stage), so two different
    problems of one kind never deduplicate into one (a secret past its age must not hide a
    security incident). No cause: the kind is the whole identity."""
    key = f"runbook/{service}/{environment}/{kind.value}"
    return (f"{key}/{cause}" if cause else key)[:255]


def make_alert(
    kind: AlertKind, service: str, environment: str, summary: str, *, details: str = "",
    link: str | None = None, severity: Severity | None = None, cause: str = "",
) -> Alert:
    """An alert with the runbook's severity for its kind and the stable dedup key of its
    kind and cause."""
    return Alert(
        kind=kind, severity=severity or DEFAULT_SEVERITY[kind], service=service,
        environment=environment, summary=summary, details=details, link=link,
        dedup_key=dedup_key(service, environment, kind, cause),
    )
