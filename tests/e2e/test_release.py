"""The whole pipeline on the real local stack: Docker engine, registry, HAProxy, Prometheus,
Prefect server. Each test delivers its own copy of the sample service."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from runbook import stack
from runbook.models import Outcome, RunReport
from runbook.settings import StackSettings
from runbook_cli.exit_codes import ExitCode, exit_code_for

pytestmark = pytest.mark.stack
RUNBOOK = str(Path(sys.executable).parent / "runbook")


def deliver(service_dir: Path, tmp_path: Path, *build_args: str,
            strategy: str = "blue-green") -> tuple[RunReport, int]:
    """Run `runbook pipeline` as a user would; the report and the exit code."""
    report_path = tmp_path / f"report-{time.monotonic_ns()}.json"
    command = [RUNBOOK, "pipeline", str(service_dir), "--env", "staging",
               "--strategy", strategy, "--report", str(report_path)]
    for arg in build_args:
        command += ["--build-arg", arg]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert report_path.exists(), completed.stdout + completed.stderr
    return RunReport.model_validate_json(report_path.read_text()), completed.returncode


def runbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNBOOK, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def service_name(service_dir: Path) -> str:
    return str(yaml.safe_load((service_dir / "service.yaml").read_text())["name"])


def version_at(endpoint: str) -> str:
    return str(httpx.get(endpoint + "/", timeout=5).json()["version"])


class ContinuousClient:
    """Requests the endpoint back to back and counts requests no revision answered:
    connection failures and the router's own 502/503/504 (a dropped switch). Deliberate
    500s of a bad release come from the app itself and are counted apart."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.ok = 0
        self.app_errors = 0
        self.dropped: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ContinuousClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.endpoint + "/", timeout=10)
                except httpx.HTTPError as exc:
                    self.dropped.append(type(exc).__name__)
                    continue
                if response.status_code in (502, 503, 504):
                    self.dropped.append(f"HTTP {response.status_code}")
                elif response.status_code >= 500:
                    self.app_errors += 1
                else:
                    self.ok += 1
                time.sleep(0.01)


def test_good_switch_then_bad_release_rolls_back_without_dropping_requests(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path
) -> None:
    service = sample_service()
    first, code = deliver(service, tmp_path, "VERSION=1")
    assert (first.outcome, code) == (Outcome.RELEASED, 0), first.reason
    assert first.previous is None and first.revision is not None
    assert first.image and "@sha256:" in first.image
    endpoint = str(first.endpoint)
    assert version_at(endpoint) == "1"

    with ContinuousClient(endpoint) as client:
        second, code = deliver(service, tmp_path, "VERSION=2")
        assert (second.outcome, code) == (Outcome.RELEASED, 0), second.reason
        assert second.previous == first.revision
        assert second.endpoint == endpoint  # stable across releases
        assert version_at(endpoint) == "2"

        # By hand, both ways: the standby is the previous release, then the other one.
        assert runbook("rollback", service_name(service), "--env", "staging",
                       "--to", str(first.revision)).returncode == 0
        assert version_at(endpoint) == "1"
        status = json.loads(runbook("status", service_name(service), "--env", "staging").stdout)
        assert status["live"]["revision"] == first.revision
        assert status["standby"]["revision"] == second.revision
        assert runbook("rollback", service_name(service), "--env", "staging").returncode == 0
        assert version_at(endpoint) == "2"

        # Healthy through preview and load test, then 30 % errors once live.
        bad, code = deliver(service, tmp_path, "VERSION=3", "ERROR_RATE=0.3",
                            "DEGRADE_AFTER_S=9")
        assert bad.outcome is Outcome.ROLLED_BACK, bad.reason
        assert code == ExitCode.ROLLED_BACK
        assert "error-rate" in bad.reason
        assert bad.revision == second.revision and bad.previous == second.revision
        time.sleep(1)

    assert version_at(endpoint) == "2"
    assert client.dropped == [], f"{len(client.dropped)} dropped of {client.ok} ok"
    assert client.ok > 100
    stages = {s.name: s.status.value for s in bad.stages}
    assert stages["promote"] == "passed"
    assert stages["verify"] == "failed"
    assert stages["rollback"] == "passed"


def test_unhealthy_release_never_receives_traffic(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path
) -> None:
    service = sample_service()
    good, _ = deliver(service, tmp_path, "VERSION=1")
    assert good.outcome is Outcome.RELEASED, good.reason
    with ContinuousClient(str(good.endpoint)) as client:
        bad, code = deliver(service, tmp_path, "VERSION=2", "HEALTH_FAIL=1")
    assert (bad.outcome, code) == (Outcome.BLOCKED, ExitCode.BLOCKED)
    assert "never became healthy" in bad.reason
    assert [g.name for g in bad.gates if not g.passed] == ["candidate_health"]
    assert "promote" not in {s.name for s in bad.stages}
    assert bad.revision == good.revision
    assert client.app_errors == 0 and client.dropped == []
    assert version_at(str(good.endpoint)) == "1"
    # A failed gate is attempted once: no retry of the deploy task that reported it.
    assert _task_run_counts(bad)["deploy_candidate"] == [1]


def test_slow_release_does_not_stay_live(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path
) -> None:
    service = sample_service()
    good, _ = deliver(service, tmp_path, "VERSION=1")
    assert good.outcome is Outcome.RELEASED, good.reason
    slow, code = deliver(service, tmp_path, "VERSION=2", "LATENCY_MS=6000")
    assert slow.outcome in (Outcome.BLOCKED, Outcome.ROLLED_BACK)
    assert code == exit_code_for(slow.outcome)
    latency_gate = next(g for g in slow.gates if g.name == "perf_avg_latency_s")
    assert not latency_gate.passed and float(latency_gate.value or 0) >= 6.0
    assert version_at(str(good.endpoint)) == "1"

    # Fast through preview and load test, 6 s per request once live: verification catches it.
    late, code = deliver(service, tmp_path, "VERSION=3", "LATENCY_MS=6000", "DEGRADE_AFTER_S=9")
    assert (late.outcome, code) == (Outcome.ROLLED_BACK, ExitCode.ROLLED_BACK), late.reason
    # avg-latency or traffic-latency; or, when no 6 s request completes within an interval,
    # the windowed error rate has no data: inconclusive, which is never a pass either.
    assert "latency" in late.reason or "no data" in late.reason, late.reason
    assert version_at(str(good.endpoint)) == "1"


def test_unchanged_release_is_not_rebuilt_or_redeployed(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path
) -> None:
    service = sample_service()
    first, _ = deliver(service, tmp_path, "VERSION=1")
    again, code = deliver(service, tmp_path, "VERSION=1")
    assert (again.outcome, code) == (Outcome.RELEASED, 0)
    assert again.image == first.image and again.revision == first.revision
    assert again.reason == "already live"
    assert _task_run_states(again)["build_image"] == ["Cached"]

    # The engine stops the container (as a machine restart does): `stack up` brings the
    # live revision back on a new port and points the router at it.
    import docker

    client = docker.DockerClient(base_url=stack_settings.docker_host, timeout=30)
    live = client.containers.list(filters={"label": f"io.runbook.server=blue-{first.revision}"})
    assert len(live) == 1
    live[0].stop(timeout=5)
    statuses = {s.name: s for s in stack.up(stack_settings)}
    assert statuses["deployments"].action == "started"
    assert version_at(str(first.endpoint)) == "1"


def test_rolling_release_retires_the_old_one_and_undoes_a_bad_one(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path
) -> None:
    service = sample_service()
    name = service_name(service)
    first, _ = deliver(service, tmp_path, "VERSION=1", strategy="rolling")
    second, code = deliver(service, tmp_path, "VERSION=2", strategy="rolling")
    assert (second.outcome, code) == (Outcome.RELEASED, 0), second.reason
    stages = {s.name: s.status.value for s in second.stages}
    assert stages["perf"] == "skipped" and stages["rollout"] == "passed"
    assert stages["retire"] == "passed"
    status = json.loads(runbook("status", name, "--env", "staging").stdout)
    assert status["live"]["revision"] == second.revision and status["standby"] is None

    bad, code = deliver(service, tmp_path, "VERSION=3", "ERROR_RATE=0.3", "DEGRADE_AFTER_S=4",
                        strategy="rolling")
    assert (bad.outcome, code) == (Outcome.ROLLED_BACK, ExitCode.ROLLED_BACK), bad.reason
    assert "rollout undone" in next(s.detail for s in bad.stages if s.name == "rollback")
    assert bad.revision == second.revision
    assert version_at(str(first.endpoint)) == "2"


def _task_runs(report: RunReport) -> list:  # type: ignore[type-arg]
    flow_run_id = str(report.flow_run_url).rstrip("/").rsplit("/", 1)[-1]
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def _task_run_counts(report: RunReport) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {}
    for run in _task_runs(report):
        counts.setdefault(run.name.rsplit("-", 1)[0], []).append(run.run_count)
    return counts


def _task_run_states(report: RunReport) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for run in _task_runs(report):
        states.setdefault(run.name.rsplit("-", 1)[0], []).append(run.state.name)
    return states
