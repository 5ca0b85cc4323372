"""Alert routing and the pipeline's alert decisions: pure functions."""

from __future__ import annotations

import pytest

from runbook.alerts.models import AlertAction, AlertKind, Channel, Severity, make_alert
from runbook.alerts.release import plan_release_alerts
from runbook.alerts.routing import route
from runbook.alerts.settings import AlertSettings, ServiceRouting
from runbook.models import Gate, Outcome, RunReport

ALL = frozenset(Channel)


@pytest.mark.parametrize(("severity", "environment", "configured", "channels", "fallback"), [
    (Severity.CRITICAL, "production", ALL, [Channel.SLACK, Channel.PAGERDUTY], Channel.EMAIL),
    (Severity.CRITICAL, "staging", ALL, [Channel.SLACK], Channel.EMAIL),
    (Severity.WARNING, "production", ALL, [Channel.SLACK], Channel.EMAIL),
    (Severity.CRITICAL, "production", frozenset({Channel.EMAIL}), [Channel.EMAIL], None),
    (Severity.CRITICAL, "production", frozenset(), [], None),
])
def test_routing(severity: Severity, environment: str, configured: frozenset[Channel],
                 channels: list[Channel], fallback: Channel | None) -> None:
    alert = make_alert(AlertKind.ROLLBACK, "shop", environment, "x", severity=severity)
    assert route(alert, ServiceRouting(), configured).model_dump() == {
        "channels": channels, "fallback": fallback}


def test_service_routing_pages_other_environments_and_emails_its_owners() -> None:
    alert = make_alert(AlertKind.ROLLBACK, "shop", "staging", "x")
    routing = ServiceRouting(page_environments=["staging"], email_to=["owner@example.com"])
    assert route(alert, routing, ALL).channels == [Channel.SLACK, Channel.PAGERDUTY,
                                                   Channel.EMAIL]


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_ALERT_SLACK_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("RUNBOOK_ALERT_SMTP_TO", "a@example.com, b@example.com")
    settings = AlertSettings()
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings.model_dump())
    assert settings.smtp_to == ["a@example.com", "b@example.com"]
    assert settings.configured() == {Channel.SLACK}


def _report(outcome: Outcome, gates: list[Gate] | None = None) -> RunReport:
    return RunReport(outcome=outcome, service="shop", environment="production",
                     strategy="blue-green", target="docker", revision="r1", reason="why",
                     gates=gates or [])


@pytest.mark.parametrize(("outcome", "failed_gate", "kind"), [
    (Outcome.ROLLED_BACK, None, AlertKind.ROLLBACK),
    (Outcome.FAILED, None, AlertKind.PIPELINE_FAILURE),
    (Outcome.BLOCKED, "scan_severity", AlertKind.VULNERABILITY),
    (Outcome.BLOCKED, "perf_error_rate", AlertKind.PERFORMANCE_DEGRADATION),
    (Outcome.BLOCKED, "candidate_health", AlertKind.DEPLOYMENT_FAILURE),
    (Outcome.BLOCKED, "tests", AlertKind.TEST_FAILURE),
])
def test_a_bad_run_raises_exactly_one_alert_of_its_kind(
    outcome: Outcome, failed_gate: str | None, kind: AlertKind
) -> None:
    gates = [Gate(name=failed_gate, passed=False, value=1, threshold=0)] if failed_gate else []
    plan = plan_release_alerts(_report(outcome, gates), [])
    assert plan.trigger is not None and plan.trigger.kind is kind and plan.resolve == []
    assert plan.trigger.dedup_key.startswith(f"runbook/shop/production/{kind.value}")


def test_a_released_run_resolves_every_open_alert_with_its_key() -> None:
    open_alert = make_alert(AlertKind.ROLLBACK, "shop", "production", "rolled back")
    plan = plan_release_alerts(_report(Outcome.RELEASED), [open_alert])
    assert plan.trigger is None
    (resolution,) = plan.resolve
    assert resolution.action is AlertAction.RESOLVE
    assert resolution.dedup_key == open_alert.dedup_key


def test_publishing_deduplicates_and_resolution_closes_the_incident(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from runbook.alerts.notifier import Notifier
    from runbook.incidents import IncidentStatus

    notifier = Notifier(tmp_path, AlertSettings(_env_file=None))
    alert = make_alert(AlertKind.ROLLBACK, "shop", "production", "rolled back")
    first = notifier.publish(alert)
    again = notifier.publish(make_alert(AlertKind.ROLLBACK, "shop", "production", "again"))
    assert first.enqueued and not again.enqueued
    assert first.incident is not None and again.incident is not None
    assert first.incident.id == again.incident.id
    closed = notifier.publish(alert.resolution())
    assert closed.enqueued and closed.incident is not None
    assert closed.incident.status is IncidentStatus.RESOLVED
    assert not notifier.publish(alert.resolution()).enqueued  # nothing open any more
    assert len(notifier.outbox.pending()) == 2


def test_slacks_retry_after_is_capped_at_max_backoff() -> None:
    """slack-sdk's own 429 handler would sleep an hour here."""
    from slack_sdk.http_retry.request import HttpRequest
    from slack_sdk.http_retry.response import HttpResponse
    from slack_sdk.http_retry.state import RetryState

    from runbook.alerts.slack import CappedRateLimitHandler

    slept: list[float] = []
    handler = CappedRateLimitHandler(max_retry_count=3, max_wait_s=30, sleep=slept.append)
    request = HttpRequest(method="POST", url="http://slack.invalid/api/chat.postMessage",
                          headers={})
    for header, expected in (("3600", 30), ("2", 2), ("soon", 1)):
        response = HttpResponse(status_code=429, headers={"Retry-After": header})
        state = RetryState()
        assert handler.can_retry(state=state, request=request, response=response)
        handler.prepare_for_next_attempt(state=state, request=request, response=response)
        assert state.next_attempt_requested and state.current_attempt == 1
        assert slept[-1] == expected
