"""The emergency procedures on the local stack, docker target: a production outage rolls
back to the kept revision and pages; a security incident isolates the service (503, the
containers kept) and notifies security. Two pipeline deliveries in all; Slack and PagerDuty
are the local stand-ins of the alerting e2e test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from pytest_httpserver import HTTPServer

from flows.emergency import production_outage, security_incident
from runbook import stack
from runbook.emergency import ROTATION_PENDING, EmergencyResult, EmergencyStatus
from runbook.incident_store import IncidentStore
from runbook.incidents import IncidentStatus, Priority, Step
from runbook.models import Outcome
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook.targets import make_target
from runbook.targets.docker import LABEL
from tests.conftest import FAST_POLICY
from tests.e2e.test_alerting_release import StandIns, deliver

pytestmark = pytest.mark.stack
SECURITY_CHANNEL = "#security-incidents"


def alert_env(httpserver: HTTPServer, state: Path) -> dict[str, str]:
    return {
        "RUNBOOK_ALERT_STATE_DIR": str(state),
        "RUNBOOK_ALERT_SLACK_TOKEN": "xoxb-e2e",
        "RUNBOOK_ALERT_SLACK_BASE_URL": httpserver.url_for("/api/"),
        "RUNBOOK_ALERT_PAGERDUTY_ROUTING_KEY": "e2e-routing-key",
        "RUNBOOK_ALERT_PAGERDUTY_EVENTS_URL": httpserver.url_for("/v2/enqueue"),
        "RUNBOOK_ALERT_SECURITY_SLACK_CHANNEL": SECURITY_CHANNEL,
    }


def service_name(service_dir: Path) -> str:
    return yaml.safe_load((service_dir / "service.yaml").read_text())["name"]


def test_outage_rolls_back_and_pages_then_security_incident_isolates(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path,
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand_ins = StandIns(httpserver)
    state = tmp_path / "alert-state"
    env = alert_env(httpserver, state)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Trivy has no vulnerability database here; production fails closed on it.
    service = sample_service(policy={**FAST_POLICY, "scan": {"fail_closed_environments": []}})
    name = service_name(service)
    first = deliver(service, tmp_path, env, "VERSION=1")
    second = deliver(service, tmp_path, env, "VERSION=2")
    assert (first.outcome, second.outcome) == (Outcome.RELEASED, Outcome.RELEASED), \
        second.reason
    target = make_target("docker", RunbookSettings.of(stack_settings))

    outage = production_outage(service=name, reason="e2e: users see errors",
                               return_state=True)
    result: EmergencyResult = outage.result()
    assert result.status is EmergencyStatus.MITIGATED
    assert (result.serving_before, result.serving_after) == (second.revision, first.revision)
    assert target.live(name, "production").revision == first.revision
    assert httpx.get(second.endpoint + "/health", timeout=5).status_code == 200
    (page,) = stand_ins.pagerduty
    assert page["event_action"] == "trigger"
    assert page["dedup_key"] == f"runbook/{name}/production/production_down/outage"
    # Paged before the rollback was tried; the incident records that it happened.
    assert len(stand_ins.slack) == 1 and "rolling back" in stand_ins.slack[0]["text"]
    (incident,) = IncidentStore(state).all()
    assert (incident.id, incident.priority) == (result.incident_id, Priority.P1)
    mitigate = next(s for s in incident.steps if s.step is Step.MITIGATE)
    assert mitigate.done_at is not None and first.revision in mitigate.note

    isolation = security_incident(service=name, reason="e2e: leaked token", return_state=True)
    result = isolation.result()
    assert result.status is EmergencyStatus.MITIGATED
    assert result.serving_before == first.revision and result.serving_after is None
    assert ROTATION_PENDING in result.pending  # said, not faked
    assert httpx.get(second.endpoint + "/health", timeout=5).status_code == 503
    client = stack.docker_client(stack_settings)
    try:
        containers = client.containers.list(filters={"label": [f"{LABEL}.service={name}"]})
    finally:
        client.close()
    assert len(containers) == 2  # both revisions kept, running, for forensics
    assert stand_ins.slack[-1]["channel"] == SECURITY_CHANNEL
    assert [e["dedup_key"].split("/")[3] for e in stand_ins.pagerduty] == [
        "production_down", "security_incident"]
    security = [i for i in IncidentStore(state).all() if i.id == result.incident_id]
    assert [(i.priority, i.status) for i in security] == [(Priority.P1, IncidentStatus.OPEN)]


def test_outage_without_a_kept_revision_pages_and_fails_clearly(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path,
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand_ins = StandIns(httpserver)
    for key, value in alert_env(httpserver, tmp_path / "alert-state").items():
        monkeypatch.setenv(key, value)
    name = service_name(sample_service())  # never delivered: nothing to roll back to

    outage = production_outage(service=name, return_state=True)

    assert outage.is_failed()
    assert "keeps no previous revision to roll back to" in str(outage.message)
    page, failed = stand_ins.pagerduty  # the page first, then: the rollback did not happen
    assert "rolling back" in page["payload"]["summary"]
    assert failed["payload"]["summary"].endswith("act now")
    assert failed["dedup_key"] != page["dedup_key"]
