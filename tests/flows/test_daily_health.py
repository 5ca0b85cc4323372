"""Daily health and DORA from a real Prefect server populated by real flow runs (their run
report artifacts), pushed to the Pushgateway and read back through Prometheus."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean

import httpx
import pytest
from prefect import flow, task

from flows.maintenance import daily_health
from runbook.models import Outcome, RunReport, StageRecord, StageStatus
from runbook.names import BUILD_TAG, Stage
from runbook.ops.health import RunKind
from runbook.settings import StackSettings
from tasks.report import publish_report

pytestmark = pytest.mark.stack
SCRAPE_DEADLINE_S = 30


@task(name="build_image", tags=[BUILD_TAG])
def fake_build(ok: bool) -> None:
    if not ok:
        raise RuntimeError("build broke")


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


def report(service: str, outcome: Outcome, deploy_s: float) -> RunReport:
    """A run report whose deploy took ``deploy_s``: preview .. verify (blue-green), or, for
    the released run, a rolling one (preview skipped, rollout .. verify)."""
    now = datetime.now(UTC)
    rolling = outcome is Outcome.RELEASED

    def stage(name: Stage, seconds: float, status: StageStatus = StageStatus.PASSED
              ) -> StageRecord:
        return StageRecord(name=name, status=status, started_at=now, duration_s=seconds)

    deploying = ([stage(Stage.PREVIEW, 0.0, StageStatus.SKIPPED),
                  stage(Stage.ROLLOUT, deploy_s / 2)] if rolling
                 else [stage(Stage.PREVIEW, deploy_s / 2)])
    stages = [stage(Stage.BUILD, 1.0), *deploying, stage(Stage.VERIFY, deploy_s / 2)]
    return RunReport(outcome=outcome, service=service, environment="staging",
                     strategy="rolling" if rolling else "blue-green", target="docker",
                     revision="r1", stages=stages)


def artifact(key: str) -> str:
    response = httpx.post(f"{os.environ.get('PREFECT_API_URL', '')}/artifacts/filter",
                          timeout=10, json={"artifacts": {"key": {"any_": [key]}},
                                            "sort": "CREATED_DESC", "limit": 1})
    response.raise_for_status()
    return str(response.json()[0]["data"])


def test_daily_health_and_dora_from_real_runs(
    stack_settings: StackSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its own incidents and outbox: others' alerts in the shared state are not this test's.
    monkeypatch.setenv("RUNBOOK_ALERT_STATE_DIR", str(tmp_path))
    name = f"health-probe-{uuid.uuid4().hex[:8]}"
    service = f"svc-{name}"

    @flow(name=name)
    def probe_pipeline(build_ok: bool, outcome: Outcome, deploy_s: float) -> None:
        fake_build(build_ok)
        if build_ok:
            publish_report(report(service, outcome, deploy_s), None)

    for build_ok, outcome, deploy_s in [(True, Outcome.RELEASED, 4.0),
                                        (True, Outcome.ROLLED_BACK, 6.0),
                                        (True, Outcome.BLOCKED, 1.0),
                                        (False, Outcome.FAILED, 0.0)]:
        probe_pipeline(build_ok, outcome, deploy_s, return_state=True)

    health = daily_health(flow_names=[name], alert=False)

    by = {(w.kind, w.days): w for w in health.windows}
    for days in (1, 7):
        build, deploy = by[RunKind.BUILD, days], by[RunKind.DEPLOY, days]
        assert (build.runs, build.succeeded) == (4, 3)
        assert build.avg_duration_s == pytest.approx(
            fmean(finished_durations(stack_settings, name, "build_image")), abs=1e-6)
        # One definition of a deploy: blocked counts neither way (runbook/ops/deploys.py);
        # the rolling release's rollout is deploy time like the blue-green preview.
        assert (deploy.runs, deploy.succeeded, deploy.avg_duration_s) == (2, 1, 5.0)
    assert {(b.kind, b.metric) for b in health.breaches} == {
        (RunKind.BUILD, "success_rate"), (RunKind.DEPLOY, "success_rate")}

    query = f'runbook_dora_change_failure_ratio{{service="{service}"}}'
    deadline = time.monotonic() + SCRAPE_DEADLINE_S
    value = None
    while time.monotonic() < deadline:
        value = prometheus_value(stack_settings, query)
        if value is not None:
            break
        time.sleep(1)
    assert value == pytest.approx(0.5)
    assert prometheus_value(stack_settings, 'runbook_health_runs{kind="deploy",window_days="7"}'
                            ) == 2
    markdown = artifact("pipeline-health")
    section = markdown[markdown.index(f"### {service} / staging"):]
    for key, elite in [("deployment frequency", "on demand"), ("lead time for changes", "< 1 day"),
                       ("change failure rate", "<= 15 %"), ("time to restore", "< 1 hour")]:
        row = next(line for line in section.splitlines() if line.startswith(f"| {key} |"))
        assert elite in row
    assert "| change failure rate | 50% | <= 15 % | **no** |" in section
    assert "![dora trend](data:image/png;base64," in markdown
