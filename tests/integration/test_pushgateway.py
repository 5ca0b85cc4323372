"""Run metrics on the real Pushgateway: one group per run, nothing read back, so runs
pushing at the same time lose nothing; old run groups are pruned."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runbook.adapters.pushgateway import JOB, RUN_RETENTION_S, Pushgateway
from runbook.errors import TransientError
from runbook.run_metrics import RunSample, StageSample
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack


@pytest.fixture
def service(stack_settings: StackSettings) -> Iterator[str]:
    """A service name of this test only; its groups are deleted afterwards."""
    name = f"push-{uuid.uuid4().hex[:6]}"
    yield name
    gateway = stack_settings.pushgateway_url
    groups = httpx.get(f"{gateway}/api/v1/metrics", timeout=5).json()["data"]
    for group in groups:
        labels = group["labels"]
        if labels.get("job") == JOB and labels.get("service") == name:
            path = "".join(f"/{k}/{v}" for k, v in labels.items() if k != "job")
            httpx.delete(f"{gateway}/metrics/job/{JOB}{path}", timeout=5)


def _sample(service: str, outcome: str, deploy: str, seconds: float,
            run: str | None = None) -> RunSample:
    return RunSample(service=service, environment="staging", run=run or uuid.uuid4().hex,
                     outcome=outcome, finished_at_s=datetime.now(UTC).timestamp(),
                     stages=[StageSample(stage="build", outcome="passed", duration_s=seconds),
                             StageSample(stage="deploy", outcome=deploy, duration_s=seconds)])


Key = tuple[str, tuple[tuple[str, str], ...]]


def _summed(url: str, service: str) -> dict[Key, float]:
    """What the rules compute: each series summed over the service's run groups."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    sums: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("service") != service or s.labels.get("job") != JOB:
                continue
            own = tuple(sorted((k, v) for k, v in s.labels.items() if k in ("stage", "outcome")))
            sums[(s.name, own)] = sums.get((s.name, own), 0.0) + s.value
    return sums


BUILD = (("outcome", "passed"), ("stage", "build"))


def test_two_runs_add_up_and_a_retried_push_counts_once(stack_settings: StackSettings,
                                                         service: str) -> None:
    gateway = Pushgateway(stack_settings.pushgateway_url)
    first = _sample(service, "released", "passed", 10)
    gateway.push_run(first)
    gateway.push_run(first)  # a task retry: same run, same group
    gateway.push_run(_sample(service, "rolled_back", "failed", 30))
    values = _summed(stack_settings.pushgateway_url, service)
    assert values[("runbook_pipeline_run_stage", BUILD)] == 2
    assert values[("runbook_pipeline_run_stage_duration_seconds", BUILD)] == 40
    assert values[("runbook_pipeline_run_outcome", (("outcome", "released"),))] == 1
    assert values[("runbook_pipeline_run_outcome", (("outcome", "rolled_back"),))] == 1
    assert values[("runbook_pipeline_run_outcome", (("outcome", "blocked"),))] == 0  # seeded
    deploy_failed = (("outcome", "failed"), ("stage", "deploy"))
    assert values[("runbook_pipeline_run_stage", deploy_failed)] == 1
    assert values[("runbook_pipeline_last_stage_duration_seconds", BUILD)] == 30


def test_concurrent_runs_lose_no_count(stack_settings: StackSettings, service: str) -> None:
    """Twelve runs push at once (the read-increment-push this replaced lost some)."""
    gateway = Pushgateway(stack_settings.pushgateway_url)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda n: gateway.push_run(_sample(service, "released", "passed", n)),
                      range(12)))
    values = _summed(stack_settings.pushgateway_url, service)
    assert values[("runbook_pipeline_run_stage", BUILD)] == 12
    assert values[("runbook_pipeline_run_stage_duration_seconds", BUILD)] == sum(range(12))


def test_run_groups_past_retention_are_pruned(stack_settings: StackSettings,
                                              service: str) -> None:
    gateway = Pushgateway(stack_settings.pushgateway_url)
    gateway.push_run(_sample(service, "released", "passed", 1, run="old"))
    pruned = gateway.prune_runs(now_s=time.time() + RUN_RETENTION_S + 60)
    assert pruned >= 1
    assert ("runbook_pipeline_run_stage", BUILD) not in _summed(
        stack_settings.pushgateway_url, service)
    # The last-run group is not a run group: it stays.
    assert ("runbook_pipeline_last_stage_duration_seconds", BUILD) in _summed(
        stack_settings.pushgateway_url, service)


def test_an_unreachable_gateway_is_transient() -> None:
    with pytest.raises(TransientError):
        Pushgateway("http://127.0.0.1:9", timeout_s=1).push_run(_sample("x", "failed", "x", 1))
