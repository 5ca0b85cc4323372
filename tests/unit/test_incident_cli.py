"""`runbook incident list|ack|resolve` on a temporary alert state directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from runbook.alerts.models import AlertKind, Channel, make_alert
from runbook.alerts.notifier import Notifier
from runbook.alerts.settings import AlertSettings
from runbook.incident_store import IncidentStore
from runbook.incidents import IncidentStatus, Step, open_incident

RUNBOOK = str(Path(sys.executable).parent / "runbook")


def run(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNBOOK, "incident", *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "RUNBOOK_ALERT_STATE_DIR": str(state), **env},
    )


def seed(state: Path) -> tuple[str, str]:
    """An overdue P1 (opened an hour ago) and a resolved P3."""
    store = IncidentStore(state)
    old = open_incident(make_alert(AlertKind.PRODUCTION_DOWN, "shop", "production", "down"),
                        datetime.now(UTC) - timedelta(hours=1))
    done = open_incident(make_alert(AlertKind.TEST_FAILURE, "shop", "staging", "red"),
                         datetime.now(UTC)).model_copy(update={"status": IncidentStatus.RESOLVED})
    store.save(old)
    store.save(done)
    return old.id, done.id


def test_list_shows_open_incidents_with_deadline_and_overdue_flag(tmp_path: Path) -> None:
    overdue, resolved = seed(tmp_path)

    listed = run(tmp_path, "list")
    everything = run(tmp_path, "list", "--all")

    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if overdue in line)
    assert "P1" in row and "OVERDUE" in row and "UTC" in row
    assert resolved not in listed.stdout
    assert resolved in everything.stdout


def test_ack_records_who_and_when(tmp_path: Path) -> None:
    overdue, _ = seed(tmp_path)

    acked = run(tmp_path, "ack", overdue, "--by", "alice")

    assert acked.returncode == 0, acked.stderr
    incident = IncidentStore(tmp_path).get(overdue)
    assert incident.status is IncidentStatus.ACKNOWLEDGED
    assert incident.acknowledged_by == "alice" and incident.acknowledged_at is not None
    step = next(s for s in incident.steps if s.step is Step.ACKNOWLEDGE)
    assert step.done_at == incident.acknowledged_at and step.by == "alice"



def test_assess_then_mitigate_keep_the_acknowledgement(tmp_path: Path) -> None:
    # Each step is a change under the incident's row lock: a later step never writes back a
    # copy read before an earlier one landed.
    overdue, _ = seed(tmp_path)

    steps = [run(tmp_path, "ack", overdue, "--by", "alice"),
             run(tmp_path, "assess", overdue, "--impact", "checkout down", "--by", "bob"),
             run(tmp_path, "mitigate", overdue, "--action", "rolled back", "--by", "carol")]

    assert [s.returncode for s in steps] == [0, 0, 0], [s.stderr for s in steps]
    incident = IncidentStore(tmp_path).get(overdue)
    assert incident.status is IncidentStatus.ACKNOWLEDGED and incident.acknowledged_by == "alice"
    assert incident.impact == "checkout down"
    done = {s.step: s.by for s in incident.steps if s.done_at is not None}
    assert done[Step.ASSESS] == "bob" and done[Step.MITIGATE] == "carol"

class Channels:
    """A local PagerDuty (``/v2/enqueue``) and Slack (``chat.postMessage``) on one server;
    PagerDuty answers the scripted statuses first, then 202."""

    def __init__(self, server: HTTPServer, *pagerduty_script: int) -> None:
        self.events: list[dict] = []
        self.slack: list[dict] = []
        self.script = list(pagerduty_script)
        server.expect_request("/v2/enqueue", method="POST").respond_with_handler(self._pd)
        server.expect_request("/api/chat.postMessage",
                              method="POST").respond_with_handler(self._slack)
        self.env = {
            "RUNBOOK_ALERT_PAGERDUTY_ROUTING_KEY": "cli-key",
            "RUNBOOK_ALERT_PAGERDUTY_EVENTS_URL": server.url_for("/v2/enqueue"),
            "RUNBOOK_ALERT_SLACK_TOKEN": "xoxb-cli",
            "RUNBOOK_ALERT_SLACK_BASE_URL": server.url_for("/api/"),
            "RUNBOOK_ALERT_BACKOFF_S": "0.05", "RUNBOOK_ALERT_MAX_BACKOFF_S": "1",
        }
        self.settings = AlertSettings(
            _env_file=None, pagerduty_routing_key="cli-key",
            pagerduty_events_url=self.env["RUNBOOK_ALERT_PAGERDUTY_EVENTS_URL"],
            slack_token="xoxb-cli", slack_base_url=self.env["RUNBOOK_ALERT_SLACK_BASE_URL"],
            backoff_s=0.05, max_backoff_s=1,
        )

    def _pd(self, request: Request) -> Response:
        self.events.append(json.loads(request.get_data()))
        status = self.script.pop(0) if self.script else 202
        return Response(json.dumps({"status": "success" if status == 202 else "invalid"}),
                        status=status, content_type="application/json")

    def _slack(self, request: Request) -> Response:
        self.slack.append(json.loads(request.get_data()))
        return Response(json.dumps({"ok": True, "ts": "1.1"}), content_type="application/json")

    def actions(self) -> list[str]:
        return [event["event_action"] for event in self.events]


def page(state: Path, channels: Channels) -> str:
    """A production outage paged (trigger delivered); returns its incident id."""
    notifier = Notifier(state, channels.settings)
    published = notifier.publish(make_alert(AlertKind.PRODUCTION_DOWN, "shop", "production",
                                            "down"))
    notifier.flush()
    assert published.incident is not None and channels.actions() == ["trigger"]
    return published.incident.id


def test_ack_acknowledges_the_page_with_the_trigger_key_and_notes_it_in_slack(
    tmp_path: Path, httpserver: HTTPServer,
) -> None:
    channels = Channels(httpserver)
    incident_id = page(tmp_path, channels)
    channels.script = [500]  # the acknowledge meets a 5xx once: retried

    acked = run(tmp_path, "ack", incident_id, "--by", "alice", **channels.env)
    again = run(tmp_path, "ack", incident_id, "--by", "bob", **channels.env)
    notifier = Notifier(tmp_path, channels.settings)
    notifier.resolve_incident(incident_id, "bad config reverted")
    notifier.flush()

    assert acked.returncode == 0 and again.returncode == 0, acked.stderr + again.stderr
    assert "wait in the outbox" not in acked.stdout
    assert channels.actions() == ["trigger", "acknowledge", "acknowledge", "resolve"]
    assert len({event["dedup_key"] for event in channels.events}) == 1
    assert "payload" not in channels.events[1]  # Events API v2: only trigger has one
    notes = [message["text"] for message in channels.slack]
    assert len(notes) == 3 and notes[1].startswith("[ACKNOWLEDGED] shop/production")
    assert "alice" in notes[1] and notes[2].startswith("[RESOLVED]")
    incident = IncidentStore(tmp_path).get(incident_id)
    assert incident.acknowledged_by == "alice"  # the second ack changed nothing, sent nothing
    assert notifier.outbox.pending() == []


def test_an_acknowledge_pagerduty_refuses_is_not_retried_and_waits_in_the_outbox(
    tmp_path: Path, httpserver: HTTPServer,
) -> None:
    channels = Channels(httpserver)
    incident_id = page(tmp_path, channels)
    channels.script = [400]

    acked = run(tmp_path, "ack", incident_id, "--by", "alice", **channels.env)

    assert acked.returncode == 0, acked.stderr
    assert "1 alert(s) wait in the outbox" in acked.stdout
    assert channels.actions() == ["trigger", "acknowledge"]  # a 400 is never retried
    (waiting,) = Notifier(tmp_path, channels.settings).outbox.pending()
    assert waiting.alert.action.value == "acknowledge"
    assert waiting.deliveries[Channel.SLACK].delivered_at is not None  # Slack took it
    assert waiting.deliveries[Channel.PAGERDUTY].delivered_at is None
    assert IncidentStore(tmp_path).get(incident_id).status is IncidentStatus.ACKNOWLEDGED


@pytest.mark.parametrize("command", [["ack", "INC-nope"], ["resolve", "INC-nope", "--note", "x"],
                                     ["ack", "../../etc/passwd"]])
def test_unknown_incident_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    seed(tmp_path)

    completed = run(tmp_path, *command)

    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_resolving_twice_is_refused(tmp_path: Path) -> None:
    _, resolved = seed(tmp_path)

    completed = run(tmp_path, "resolve", resolved, "--note", "again")

    assert completed.returncode == 2
    assert "resolved already" in completed.stderr
