"""`runbook incident resolve` end to end: the page resolved with its trigger's key and the
post-incident review published on the stack's Prefect server (moved out of tests/unit, which
uses no services)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from runbook.alerts.models import AlertKind, make_alert
from runbook.alerts.notifier import Notifier
from runbook.alerts.settings import AlertSettings
from runbook.incident_store import IncidentStore
from runbook.incidents import IncidentStatus
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
RUNBOOK = str(Path(sys.executable).parent / "runbook")


def run(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNBOOK, "incident", *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "RUNBOOK_ALERT_STATE_DIR": str(state), **env},
    )


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

    acked = run(tmp_path, "ack", incident_id, "--by", "alice", **env)
    completed = run(tmp_path, "resolve", incident_id, "--note", "bad config reverted",
                    "--by", "bob", **env)

    assert acked.returncode == 0, acked.stderr
    assert completed.returncode == 0, completed.stderr
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert len({e["dedup_key"] for e in events}) == 1
    incident = IncidentStore(tmp_path).get(incident_id)
    assert incident.status is IncidentStatus.RESOLVED and incident.resolved_at is not None
    assert "bad config reverted (by bob)" in incident.timeline[-1]
    key = f"incident-review-{incident_id.lower()}"
    response = httpx.post(f"{stack_settings.prefect_api_url}/artifacts/filter", timeout=10,
                          json={"artifacts": {"key": {"any_": [key]}}})
    (artifact,) = response.json()
    assert artifact["type"] == "markdown" and incident_id in artifact["data"]
