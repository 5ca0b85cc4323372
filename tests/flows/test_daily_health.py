"""Daily health from a real Prefect server populated by real flow runs, pushed to the
Pushgateway and read back through Prometheus."""

from __future__ import annotations

import os
import time
import uuid
from statistics import fmean

import httpx
import pytest
from prefect import flow, task

from flows.maintenance import daily_health
from runbook.ops.health import RunKind
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
SCRAPE_DEADLINE_S = 30


@task(name="build_image")
def fake_build(ok: bool) -> None:
    if not ok:
        raise RuntimeError("build broke")


@task(name="deploy_candidate")
def fake_deploy() -> None:
    time.sleep(0.05)


def finished_durations(settings: StackSettings, flow_name: str, task_name: str) -> list[float]:
    """Read back through the raw REST API, independently of the adapter under test."""
    # The server the flows ran on (the stack's, or another one chosen via PREFECT_API_URL).
    api_url = os.environ.get("PREFECT_API_URL", settings.prefect_api_url)
    response = httpx.post(f"{api_url}/task_runs/filter", timeout=10, json={
        "flows": {"name": {"any_": [flow_name]}},
        "task_runs": {"name": {"like_": task_name}}})
    response.raise_for_status()
    return [r["total_run_time"] for r in response.json()]


def prometheus_value(settings: StackSettings, query: str) -> float | None:
    response = httpx.get(f"{settings.prometheus_url}/api/v1/query", params={"query": query},
                         timeout=5)
    result = response.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_daily_health_from_real_runs(stack_settings: StackSettings) -> None:
    name = f"health-probe-{uuid.uuid4().hex[:8]}"

    @flow(name=name)
    def probe_pipeline(build_ok: bool) -> None:
        fake_build(build_ok)
        if build_ok:
            fake_deploy()

    for build_ok in (True, True, False):
        probe_pipeline(build_ok, return_state=True)

    health = daily_health(flow_names=[name], alert=False)

    by = {(w.kind, w.days): w for w in health.windows}
    for days in (1, 7):
        build, deploy = by[RunKind.BUILD, days], by[RunKind.DEPLOY, days]
        assert (build.runs, build.succeeded) == (3, 2)
        assert build.success_rate == 2 / 3
        assert (deploy.runs, deploy.success_rate) == (2, 1.0)
        assert build.avg_duration_s == pytest.approx(
            fmean(finished_durations(stack_settings, name, "build_image")), abs=1e-6)
        assert deploy.avg_duration_s == pytest.approx(
            fmean(finished_durations(stack_settings, name, "deploy_candidate")), abs=1e-6)
        assert deploy.avg_duration_s >= 0.05
    assert {(b.kind, b.metric) for b in health.breaches} == {(RunKind.BUILD, "success_rate")}

    query = 'runbook_health_success_ratio{kind="build",window_days="1"}'
    deadline = time.monotonic() + SCRAPE_DEADLINE_S
    value = None
    while time.monotonic() < deadline:
        value = prometheus_value(stack_settings, query)
        if value is not None and value == pytest.approx(2 / 3):
            break
        time.sleep(1)
    assert value == pytest.approx(2 / 3)
    assert prometheus_value(stack_settings, 'runbook_health_runs{kind="deploy",window_days="7"}'
                            ) == 2
