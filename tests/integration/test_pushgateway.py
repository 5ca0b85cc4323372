"""Run metrics on the real Pushgateway: counters add up run after run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runbook.adapters.pushgateway import JOB, Pushgateway
from runbook.errors import TransientError
from runbook.run_metrics import RunSample, StageSample
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack


@pytest.fixture
def service(stack_settings: StackSettings) -> Iterator[str]:
    name = f"push-{uuid.uuid4().hex[:6]}"
    yield name
    httpx.delete(f"{stack_settings.pushgateway_url}/metrics/job/{JOB}/service/{name}"
                 "/environment/staging", timeout=5)


def _sample(service: str, outcome: str, deploy: str, seconds: float) -> RunSample:
    return RunSample(service=service, environment="staging", outcome=outcome,
                     finished_at_s=datetime.now(UTC).timestamp(),
                     stages=[StageSample(stage="build", outcome="passed", duration_s=seconds),
                             StageSample(stage="deploy", outcome=deploy, duration_s=seconds)])


def _values(url: str, service: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items()
                              if k in ("stage", "outcome")))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
        if s.labels.get("service") == service and s.labels.get("job") == JOB
    }


def test_two_runs_add_up(stack_settings: StackSettings, service: str) -> None:
    gateway = Pushgateway(stack_settings.pushgateway_url)
    gateway.push_run(_sample(service, "released", "passed", 10))
    gateway.push_run(_sample(service, "rolled_back", "failed", 30))
    values = _values(stack_settings.pushgateway_url, service)
    build = (("outcome", "passed"), ("stage", "build"))
    assert values[("runbook_pipeline_stage_runs_total", build)] == 2
    assert values[("runbook_pipeline_stage_duration_seconds_total", build)] == 40
    assert values[("runbook_pipeline_runs_total", (("outcome", "released"),))] == 1
    assert values[("runbook_pipeline_runs_total", (("outcome", "rolled_back"),))] == 1
    assert values[("runbook_pipeline_runs_total", (("outcome", "blocked"),))] == 0  # seeded
    assert values[("runbook_pipeline_last_stage_duration_seconds", build)] == 30


def test_an_unreachable_gateway_is_transient() -> None:
    with pytest.raises(TransientError):
        Pushgateway("http://127.0.0.1:9", timeout_s=1).push_run(_sample("x", "failed", "x", 1))
