"""`runbook incident list|ack|resolve` on a temporary alert state directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from runbook.alerts.models import AlertKind, make_alert
from runbook.alerts.notifier import Notifier
from runbook.alerts.settings import AlertSettings
from runbook.incidents import IncidentStatus, IncidentStore, Step, open_incident
from runbook.settings import StackSettings

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
    assert step.done_at == incident.acknowledged_at and "alice" in step.note


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


@pytest.mark.stack
def test_resolve_resolves_the_page_and_publishes_the_review(
    stack_settings: StackSettings, tmp_path: Path, httpserver: HTTPServer,
) -> None:
    events: list[dict] = []

    def pagerduty(request: Request) -> Response:
        events.append(json.loads(request.get_data()))
        return Response(json.dumps({"status": "success"}), status=202,
                        content_type="application/json")

    httpserver.expect_request("/v2/enqueue", method="POST").respond_with_handler(pagerduty)
    env = {"RUNBOOK_ALERT_PAGERDUTY_ROUTING_KEY": "cli-key",
           "RUNBOOK_ALERT_PAGERDUTY_EVENTS_URL": httpserver.url_for("/v2/enqueue")}
    settings = AlertSettings(_env_file=None, pagerduty_routing_key="cli-key",
                             pagerduty_events_url=env["RUNBOOK_ALERT_PAGERDUTY_EVENTS_URL"])
    notifier = Notifier(tmp_path, settings)
    published = notifier.publish(make_alert(AlertKind.PRODUCTION_DOWN, "shop", "production",
                                            "down"))
    notifier.flush()
    assert published.incident is not None and [e["event_action"] for e in events] == ["trigger"]
    incident_id = published.incident.id

    completed = run(tmp_path, "resolve", incident_id, "--note", "bad config reverted",
                    "--by", "bob", **env)

    assert completed.returncode == 0, completed.stderr
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[1]["dedup_key"] == events[0]["dedup_key"]
    incident = IncidentStore(tmp_path).get(incident_id)
    assert incident.status is IncidentStatus.RESOLVED and incident.resolved_at is not None
    assert "bad config reverted (by bob)" in incident.timeline[-1]
    key = f"incident-review-{incident_id.lower()}"
    response = httpx.post(f"{stack_settings.prefect_api_url}/artifacts/filter", timeout=10,
                          json={"artifacts": {"key": {"any_": [key]}}})
    (artifact,) = response.json()
    assert artifact["type"] == "markdown" and incident_id in artifact["data"]
