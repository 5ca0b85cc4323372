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
    outage_alert,
    security_alert,
    to_markdown,
)
from runbook.incidents import Priority, open_incident
from runbook.models import Slot

ALL = frozenset(Channel)
SLOT = Slot(service="shop", environment="production", color="blue", revision="r1",
            image="reg/shop@sha256:" + "0" * 64, address="127.0.0.1:1")


def settings(**changes: object) -> AlertSettings:
    return AlertSettings(_env_file=None, **changes)  # type: ignore[arg-type]


def test_outage_alert_is_a_critical_p1_that_pages_and_says_what_happened() -> None:
    done = outage_alert("shop", "production", "users see 500s", "r1", None, None)
    failed = outage_alert("shop", "production", "users see 500s", None, "no standby", None)

    assert done.severity is Severity.CRITICAL and "rolled back to r1" in done.summary
    assert "NOT rolled back (no standby)" in failed.summary
    assert open_incident(done, datetime.now(UTC)).priority is Priority.P1
    assert Channel.PAGERDUTY in route(done, settings().routing_for_alert(done), ALL).channels


def test_security_alert_is_p1_anywhere_and_says_rotation_is_not_done() -> None:
    alert = security_alert("shop", "staging", "token leaked", [SLOT], None, None)

    assert open_incident(alert, datetime.now(UTC)).priority is Priority.P1
    assert "zero traffic (was r1)" in alert.summary
    assert ROTATION_PENDING in alert.details


def test_security_incidents_reach_the_security_team_other_alerts_do_not() -> None:
    configured = settings(security_email_to="sec@example.org, ciso@example.org",
                          security_slack_channel="#security")
    security = security_alert("shop", "production", "leak", [SLOT], None, None)
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
