"""On-call and contacts: who is paged, who is next, the six response steps recorded, and
escalation of an unacknowledged incident through the real notifier and outbox (PagerDuty
and Slack stand-ins over HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from runbook.alerts.contacts import ContactsConfig, audience
from runbook.alerts.models import AlertKind, make_alert
from runbook.alerts.notifier import Notifier
from runbook.alerts.routing import due_escalation, escalation_levels
from runbook.alerts.settings import AlertSettings
from runbook.config import load_config
from runbook.errors import ConfigurationError
from runbook.incidents import (
    Escalation,
    Step,
    TimelineEntry,
    acknowledge,
    assess,
    communicate,
    mitigate,
    open_incident,
    post_incident_review,
    record_escalation,
    resolve,
    review_markdown,
    step_record,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

CONTACTS = {
    "primary": {"name": "Alice", "email": "alice@example.com", "slack": "@alice",
                "pagerduty": {"routing_key_env": "PD_PRIMARY", "escalation_policy": "P1AAA"}},
    "secondary": {"name": "Bob", "slack": "U0BOB1234",
                  "pagerduty": {"routing_key_env": "PD_SECONDARY"}},
    "managers": [{"name": "Carol", "email": "carol@example.com"}],
    "security": {"name": "Security", "email": ["sec@example.com"],
                 "slack_channel": "#sec-incidents",
                 "pagerduty": {"routing_key_env": "PD_SECURITY"}},
    "external": [{"name": "Cloud support", "role": "hosting", "url": "https://cloud.example"}],
}


def contacts(**response: float) -> ContactsConfig:
    return ContactsConfig.model_validate({**CONTACTS, "response": response})


def test_runbook_yaml_contacts_section_is_read_and_names_env_vars_not_keys(
    tmp_path: Path,
) -> None:
    (tmp_path / "runbook.yaml").write_text(json.dumps({"contacts": CONTACTS}))
    (tmp_path / ".git").mkdir()

    config = load_config(cwd=tmp_path)

    assert config.contacts.primary is not None and config.contacts.primary.name == "Alice"
    assert [c.name for c in config.contacts.on_call] == ["Alice", "Bob", "Carol"]
    assert config.contacts.external[0].role == "hosting"
    with pytest.raises(ConfigurationError, match="routing_key_env"):
        (tmp_path / "runbook.yaml").write_text(json.dumps(
            {"contacts": {"primary": {"name": "x", "pagerduty": {"routing_key_env": "a-b"}}}}))
        load_config(cwd=tmp_path)


def test_production_critical_pages_the_primary_and_security_reaches_the_security_team(
) -> None:
    team = contacts()
    outage = make_alert(AlertKind.PRODUCTION_DOWN, "shop", "production", "down")
    breach = make_alert(AlertKind.SECURITY_INCIDENT, "shop", "production", "leak")
    slow = make_alert(AlertKind.SLOW_RESPONSES, "shop", "production", "slow")

    assert audience(outage, team).pager.routing_key_env == "PD_PRIMARY"  # type: ignore[union-attr]
    assert audience(outage, team).mentions == ["@alice"]
    security = audience(breach, team)
    assert security.pager.routing_key_env == "PD_SECURITY"  # type: ignore[union-attr]
    assert security.email_to == ["sec@example.com"]
    assert security.slack_channel == "#sec-incidents"
    assert audience(slow, team).pager is None  # a warning pages nobody


def test_the_routing_key_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_PRIMARY", "primary-key")
    settings = AlertSettings(_env_file=None, contacts=contacts(), pagerduty_routing_key="default")
    outage = make_alert(AlertKind.PRODUCTION_DOWN, "shop", "production", "down")
    warning = make_alert(AlertKind.TEST_FAILURE, "shop", "production", "red")

    assert settings.pagerduty_key_for(outage).get_secret_value() == "primary-key"  # type: ignore[union-attr]
    assert settings.pagerduty_key_for(warning).get_secret_value() == "default"  # type: ignore[union-attr]
    assert "primary-key" not in repr(settings)


def test_escalation_levels_are_due_one_response_time_apart_and_stop_at_the_last() -> None:
    team = contacts(p2_minutes=10)
    incident = open_incident(make_alert(AlertKind.ROLLBACK, "shop", "production", "rolled back"),
                             NOW, team.response)
    assert [[c.name for c in level] for level in escalation_levels(team)] == [
        ["Alice"], ["Bob"], ["Carol"]]

    assert due_escalation(incident, team, NOW + timedelta(minutes=9)) is None
    first = due_escalation(incident, team, NOW + timedelta(minutes=11))
    assert first is not None and first.level == 1 and [c.name for c in first.contacts] == ["Bob"]
    assert first.page  # P2 pages
    incident = record_escalation(incident, Escalation(level=1, at=NOW, to=["Bob"]))
    assert due_escalation(incident, team, NOW + timedelta(minutes=15)) is None
    second = due_escalation(incident, team, NOW + timedelta(minutes=21))
    assert second is not None and [c.name for c in second.contacts] == ["Carol"]
    incident = record_escalation(incident, Escalation(level=2, at=NOW, to=["Carol"]))
    assert due_escalation(incident, team, NOW + timedelta(hours=5)) is None
    acked = acknowledge(incident, NOW, "x")
    assert due_escalation(acked, team, NOW + timedelta(hours=1)) is None


def test_each_of_the_six_steps_is_recorded_with_who_when_and_what() -> None:
    incident = open_incident(make_alert(AlertKind.ROLLBACK, "shop", "production", "rolled back"),
                             NOW)
    at = [NOW + timedelta(minutes=m) for m in range(6)]
    incident = acknowledge(incident, at[0], "alice")
    incident = assess(incident, at[1], "alice", "checkout errors for 30 % of users since 11:50")
    incident = communicate(incident, at[2], "alice", "rolled back, watching",
                           ["slack #devops-alerts"])
    incident = mitigate(incident, at[3], "runbook", "switched back to r1")
    incident = resolve(incident, at[4], "fixed in r3", "bob")
    with pytest.raises(ConfigurationError, match="cause"):
        post_incident_review(incident, at[5], "bob", " ", [], [])
    run_line = TimelineEntry(at=NOW - timedelta(minutes=1), source="run",
                             text="task verify: Failed")
    incident = post_incident_review(incident, at[5], "bob", "a config flag flipped",
                                    ["alert on the flag (owner: bob)"], [run_line])

    by = {step: step_record(incident, step) for step in Step}
    assert [(by[s].by, by[s].done_at) for s in Step] == [
        ("alice", at[0]), ("alice", at[1]), ("alice", at[2]), ("runbook", at[3]),
        ("bob", at[4]), ("bob", at[5])]
    assert by[Step.COMMUNICATE].to == ["slack #devops-alerts"]
    assert by[Step.COMMUNICATE].note == "rolled back, watching"
    assert incident.impact is not None and "30 %" in incident.impact
    review = incident.review
    assert review is not None and review.timeline[0] == run_line  # merged in time order
    assert review.time_to_acknowledge_min == 0 and review.time_to_resolve_min == 4
    markdown = review_markdown(incident)
    assert "a config flag flipped" in markdown and "[run] task verify: Failed" in markdown


def test_a_review_of_an_open_incident_is_refused() -> None:
    incident = open_incident(make_alert(AlertKind.ROLLBACK, "shop", "production", "x"), NOW)
    with pytest.raises(ConfigurationError, match="not resolved"):
        post_incident_review(incident, NOW, "bob", "cause", [], [])


class PagerDuty:
    """The Events API v2 on a local server, plus Slack's chat.postMessage."""

    def __init__(self, server: HTTPServer) -> None:
        self.events: list[dict] = []
        self.slack: list[dict] = []
        server.expect_request("/v2/enqueue", method="POST").respond_with_handler(self._pd)
        server.expect_request("/api/chat.postMessage", method="POST").respond_with_handler(
            self._slack)

    def _pd(self, request: Request) -> Response:
        self.events.append(json.loads(request.get_data()))
        return Response(json.dumps({"status": "success"}), status=202,
                        content_type="application/json")

    def _slack(self, request: Request) -> Response:
        self.slack.append(json.loads(request.get_data()))
        return Response(json.dumps({"ok": True, "ts": "1.1"}), content_type="application/json")


def test_an_unacknowledged_p2_pages_the_secondary_once_and_resolving_ends_both_pages(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_PRIMARY", "key-alice")
    monkeypatch.setenv("PD_SECONDARY", "key-bob")
    stand_in = PagerDuty(httpserver)
    settings = AlertSettings(
        _env_file=None, contacts=contacts(p2_minutes=0.05),
        pagerduty_events_url=httpserver.url_for("/v2/enqueue"), slack_token="xoxb-t",
        slack_base_url=httpserver.url_for("/api/"), backoff_s=0.01)
    notifier = Notifier(tmp_path, settings)
    published = notifier.publish(make_alert(AlertKind.ROLLBACK, "shop", "production",
                                            "rolled back"))
    notifier.flush()
    assert published.incident is not None and published.incident.priority.value == "P2"

    later = datetime.now(UTC) + timedelta(seconds=4)  # deadline 3 s, next level at 6 s
    escalated = notifier.escalate_overdue(later)
    again = notifier.escalate_overdue(later)
    notifier.flush()

    assert [i.id for i in escalated] == [published.incident.id] and again == []
    assert [(e["routing_key"], e["event_action"]) for e in stand_in.events] == [
        ("key-alice", "trigger"), ("key-bob", "trigger")]
    assert "ESCALATED to Bob" in stand_in.events[1]["payload"]["summary"]
    assert stand_in.slack[0]["text"].startswith("@alice ")
    assert stand_in.slack[1]["text"].startswith("<@U0BOB1234> ")
    record = notifier.incidents.get(published.incident.id).escalations
    assert [(e.level, e.to, e.channels) for e in record] == [(1, ["Bob"],
                                                              ["pagerduty", "slack"])]

    notifier.resolve_incident(published.incident.id, "fixed")
    notifier.flush()
    resolves = [(e["routing_key"], e["dedup_key"]) for e in stand_in.events
                if e["event_action"] == "resolve"]
    assert sorted(key for key, _ in resolves) == ["key-alice", "key-bob"]
    assert len({key for _, key in resolves}) == 2


def test_communicate_sends_the_update_and_records_to_whom(
    tmp_path: Path, httpserver: HTTPServer,
) -> None:
    stand_in = PagerDuty(httpserver)
    settings = AlertSettings(_env_file=None, slack_token="xoxb-t", slack_channel="#ops",
                             slack_base_url=httpserver.url_for("/api/"))
    notifier = Notifier(tmp_path, settings)
    published = notifier.publish(make_alert(AlertKind.ROLLBACK, "shop", "production", "x"))
    assert published.incident is not None

    incident = notifier.communicate(published.incident.id, "alice", "rolled back; ETA 10 min")
    notifier.flush()

    record = step_record(incident, Step.COMMUNICATE)
    assert (record.by, record.note, record.to) == ("alice", "rolled back; ETA 10 min",
                                                   ["slack #ops"])
    assert "rolled back; ETA 10 min" in stand_in.slack[-1]["text"]
    lines = notifier.alert_records(incident)
    assert len(lines) == 2 and all(line.source == "alert" for line in lines)


def test_the_quarterly_review_is_an_item_for_its_owners_with_a_deadline_in_days() -> None:
    alert = make_alert(AlertKind.RUNBOOK_REVIEW, "runbook", "ops", "review due")
    item = open_incident(alert, NOW, contacts().response)

    assert item.category.value == "runbook_review" and item.priority.value == "P3"
    assert item.respond_by - NOW == timedelta(days=14)
    owners = audience(alert, contacts())
    assert owners.mentions == ["@alice", "Carol"]
    assert owners.email_to == ["alice@example.com", "carol@example.com"]
    assert owners.pager is None  # a review never pages
