"""A bad production release rolled back raises one Slack message, one PagerDuty trigger and
an open P2 incident; the next good release resolves both. Slack and PagerDuty are local
stand-ins speaking their protocols; the pipeline runs as `runbook pipeline`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from runbook.incident_store import IncidentStore
from runbook.incidents import IncidentStatus, Priority
from runbook.models import Outcome, RunReport
from runbook.settings import StackSettings
from tests.conftest import FAST_POLICY

pytestmark = pytest.mark.stack
RUNBOOK = str(Path(sys.executable).parent / "runbook")


class StandIns:
    def __init__(self, server: HTTPServer) -> None:
        self.slack: list[dict] = []
        self.pagerduty: list[dict] = []
        server.expect_request("/api/chat.postMessage", method="POST").respond_with_handler(
            self._slack)
        server.expect_request("/v2/enqueue", method="POST").respond_with_handler(self._pd)

    def _slack(self, request: Request) -> Response:
        self.slack.append(json.loads(request.get_data()))
        return Response(json.dumps({"ok": True, "ts": f"{time.time():.6f}"}),
                        content_type="application/json")

    def _pd(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.pagerduty.append(body)
        return Response(json.dumps({"status": "success", "dedup_key": body["dedup_key"]}),
                        status=202, content_type="application/json")


def deliver(service_dir: Path, tmp_path: Path, env: dict[str, str],
            *build_args: str) -> RunReport:
    report_path = tmp_path / f"report-{time.monotonic_ns()}.json"
    command = [RUNBOOK, "pipeline", str(service_dir), "--env", "production",
               "--report", str(report_path)]
    for arg in build_args:
        command += ["--build-arg", arg]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600,
                               check=False, env={**os.environ, **env})
    assert report_path.exists(), completed.stdout + completed.stderr
    return RunReport.model_validate_json(report_path.read_text())


def test_bad_production_release_alerts_once_and_the_next_good_release_resolves(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path,
    httpserver: HTTPServer,
) -> None:
    stand_ins = StandIns(httpserver)
    alert_state = tmp_path / "alert-state"
    env = {
        "RUNBOOK_ALERT_STATE_DIR": str(alert_state),
        "RUNBOOK_ALERT_SLACK_TOKEN": "xoxb-e2e",
        "RUNBOOK_ALERT_SLACK_BASE_URL": httpserver.url_for("/api/"),
        "RUNBOOK_ALERT_PAGERDUTY_ROUTING_KEY": "e2e-routing-key",
        "RUNBOOK_ALERT_PAGERDUTY_EVENTS_URL": httpserver.url_for("/v2/enqueue"),
    }
    # Trivy has no vulnerability database here; production fails closed on it (issue 3),
    # which is not what this test is about.
    service = sample_service(policy={**FAST_POLICY, "scan": {"fail_closed_environments": []}})
    good = deliver(service, tmp_path, env, "VERSION=1")
    assert good.outcome is Outcome.RELEASED, good.reason
    assert stand_ins.slack == [] and stand_ins.pagerduty == []

    bad = deliver(service, tmp_path, env, "VERSION=2", "ERROR_RATE=0.3", "DEGRADE_AFTER_S=14")
    assert bad.outcome is Outcome.ROLLED_BACK, bad.reason
    assert len(stand_ins.slack) == 1 and bad.service in stand_ins.slack[0]["text"]
    (trigger,) = stand_ins.pagerduty
    assert trigger["event_action"] == "trigger"
    (incident,) = IncidentStore(alert_state).all()
    assert (incident.priority, incident.status) == (Priority.P2, IncidentStatus.OPEN)
    assert incident.dedup_key == trigger["dedup_key"]

    fixed = deliver(service, tmp_path, env, "VERSION=3")
    assert fixed.outcome is Outcome.RELEASED, fixed.reason
    assert len(stand_ins.slack) == 2 and "RESOLVED" in stand_ins.slack[1]["text"]
    assert [e["event_action"] for e in stand_ins.pagerduty] == ["trigger", "resolve"]
    assert stand_ins.pagerduty[1]["dedup_key"] == trigger["dedup_key"]
    (incident,) = IncidentStore(alert_state).all()
    assert incident.status is IncidentStatus.RESOLVED
