"""Verification as declared checks on the real local stack: an application-metric fault
scraped through Prometheus' own discovery, a degradation inside the guard, and the 10 % and
40 % releases detected within one interval of each other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
)

from runbook import stack
from runbook.alerts.models import AlertKind
from runbook.alerts.notifier import Notifier
from runbook.alerts.settings import AlertSettings
from runbook.models import Outcome, RunReport
from runbook.settings import StackSettings
from runbook.targets import make_target
from tests.conftest import FAST_POLICY

pytestmark = pytest.mark.stack
RUNBOOK = str(Path(sys.executable).parent / "runbook")
# Verification is under test, not the perf stage: on a machine shared by many sessions a
# p95 of 4 ms against a baseline of 1 ms is noise, not a slower release.
POLICY = {**FAST_POLICY, "thresholds": {"perf_degradation_floor_s": 1.0}}
QUEUE_CHECK = {
    "name": "queue-depth",
    "provider": "prometheus",
    "query": 'max(agent_api_queue_depth{service="{{service}}",environment="{{environment}}",'
             'revision="{{revision}}"})',
    "failure_condition": "result > 50",
    "interval_s": 3,
}


@pytest.fixture(scope="module")
def prometheus_port(stack_settings: StackSettings,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Prometheus of these tests' own, configured exactly as the stack's (router, app
    discovery) but without rules and alerting: the shared stack's configuration is
    re-rendered by every checkout that runs `stack up`, and these tests must not depend on
    which one ran last."""
    with socket.socket() as probe:
        probe.bind((stack_settings.host, 0))
        port = probe.getsockname()[1]
    settings = stack_settings.model_copy(update={"prometheus_port": port})
    config = yaml.safe_load(stack.render_prometheus_config(settings))
    config.pop("rule_files"), config.pop("alerting")
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (directory / "log").open("wb")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={directory / 'prometheus.yml'}",
         f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address={stack_settings.host}:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://{stack_settings.host}:{port}/-/ready", timeout=2).is_success:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, "prometheus not ready"
        time.sleep(0.5)
    yield port
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture
def service_copy(sample_service: Callable[..., Path],
                 stack_settings: StackSettings) -> Iterator[Callable[..., Path]]:
    """The sample service under a name of these tests' own (``vfy-``): other test sessions
    on the shared stack remove every leftover ``e2e-`` service when they start."""
    made: list[str] = []

    def make(**changes: object) -> Path:
        name = f"vfy-{uuid.uuid4().hex[:6]}"
        made.append(name)
        changes.setdefault("policy", POLICY)
        return sample_service(name=name, **changes)

    yield make
    target = make_target("docker", stack_settings)
    for name in made:
        target.decommission(name, "staging")


def deliver(service_dir: Path, tmp_path: Path, *build_args: str,
            env: dict[str, str] | None = None) -> RunReport:
    report_path = tmp_path / f"report-{time.monotonic_ns()}.json"
    command = [RUNBOOK, "pipeline", str(service_dir), "--env", "staging",
               "--report", str(report_path)]
    for arg in build_args:
        command += ["--build-arg", arg]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600,
                               check=False, env={**os.environ, **(env or {})})
    assert report_path.exists(), completed.stdout[-3000:] + completed.stderr[-3000:]
    return RunReport.model_validate_json(report_path.read_text())


def name_of(service_dir: Path) -> str:
    return str(yaml.safe_load((service_dir / "service.yaml").read_text())["name"])


def version_at(endpoint: str) -> str:
    return str(httpx.get(endpoint + "/", timeout=5).json()["version"])


def started_at(settings: StackSettings, service: str, revision: str) -> datetime:
    """When the revision's container started (its DEGRADE_AFTER_S clock)."""
    client = docker.DockerClient(base_url=settings.docker_host, timeout=30)
    [container] = client.containers.list(all=True, filters={
        "label": [f"io.runbook.service={service}", f"io.runbook.revision={revision}"]})
    return datetime.fromisoformat(container.attrs["State"]["StartedAt"][:26] + "+00:00")


def test_an_application_metric_fault_is_rolled_back_by_a_declared_check(
    stack_settings: StackSettings, service_copy: Callable[..., Path], tmp_path: Path,
    prometheus_port: int,
) -> None:
    service = service_copy(analysis={"metrics": [QUEUE_CHECK]})
    env = {"RUNBOOK_PROMETHEUS_PORT": str(prometheus_port)}
    good = deliver(service, tmp_path, "VERSION=1", env=env)
    assert good.outcome is Outcome.RELEASED, good.reason
    queue = [m for m in good.measurements if m.check == "queue-depth"]
    # Scraped from the container by Prometheus' docker discovery, labelled by revision.
    assert queue and all(m.value == 0 for m in queue), queue
    assert good.guard_until is not None and good.guard_until > good.finished_at

    bad = deliver(service, tmp_path, "VERSION=2", "QUEUE_DEPTH=80", "DEGRADE_AFTER_S=9",
                  env=env)
    assert bad.outcome is Outcome.ROLLED_BACK, bad.reason
    assert "queue-depth" in bad.reason
    gates = {g.name: g for g in bad.gates}
    assert (gates["verify_queue_depth"].passed, gates["verify_queue_depth"].value) == (
        False, "80")
    # The router saw nothing wrong: only the application's own metric showed the fault.
    assert gates["verify_error_rate"].passed and gates["verify_health"].passed
    assert version_at(str(good.endpoint)) == "1"
    failed = [m for m in bad.measurements if m.phase == "Failed"]
    assert failed and failed[0].query.startswith("max(agent_api_queue_depth{service=")


def test_a_degradation_inside_the_guard_is_rolled_back_with_an_alert(
    stack_settings: StackSettings, service_copy: Callable[..., Path], tmp_path: Path
) -> None:
    policy = {**POLICY, "analysis": {**POLICY["analysis"], "guard_s": 120}}
    service = service_copy(policy=policy)
    alert_state = tmp_path / "alerts"
    env = {"RUNBOOK_ALERT_STATE_DIR": str(alert_state)}
    good = deliver(service, tmp_path, "VERSION=1", env=env)
    assert good.outcome is Outcome.RELEASED, good.reason

    # Healthy through preview, perf and the whole analysis window; bad 60 s after start.
    bad = deliver(service, tmp_path, "VERSION=2", "ERROR_RATE=0.3", "DEGRADE_AFTER_S=60",
                  env=env)
    assert bad.outcome is Outcome.RELEASED, bad.reason  # CI does not wait for the guard
    assert bad.guard_until is not None
    assert bad.guard_until - bad.finished_at > timedelta(seconds=100)
    endpoint = str(bad.endpoint)
    degrades_at = started_at(stack_settings, name_of(service), str(bad.revision)) \
        + timedelta(seconds=60)
    assert degrades_at > bad.finished_at, "degraded before the pipeline run ended"

    deadline = time.monotonic() + 150
    while version_at(endpoint) != "1":
        assert time.monotonic() < deadline, "the guard never rolled back"
        time.sleep(0.25)
    rolled_back_at = datetime.now(UTC)
    assert rolled_back_at - degrades_at < timedelta(seconds=30), rolled_back_at - degrades_at

    guard_run = _guard_run(name_of(service), str(bad.revision))
    assert guard_run.state is not None and guard_run.state.is_failed()
    alerts = Notifier(alert_state, AlertSettings()).open_alerts(name_of(service), "staging")
    assert [a.kind for a in alerts] == [AlertKind.ROLLBACK], alerts


def _guard_run(service: str, revision: str, timeout_s: float = 60):  # type: ignore[no-untyped-def]
    """The guard's own flow run of this revision, once it is final."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["guard"])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(
                    after_=datetime.now(UTC) - timedelta(minutes=10))),
            )
            mine = [r for r in runs if r.parameters.get("service") == service
                    and r.parameters.get("revision") == revision]
            if mine and mine[0].state is not None and mine[0].state.is_final():
                return mine[0]
            assert time.monotonic() < deadline, f"no final guard run for {service} {revision}"
            time.sleep(1)


def test_ten_and_forty_percent_failing_releases_are_caught_within_one_interval(
    stack_settings: StackSettings, service_copy: Callable[..., Path], tmp_path: Path
) -> None:
    # A window long enough that both releases go bad well inside it, after the first
    # measurements: what is compared is how fast each interval's rate sees the fault.
    policy = {**POLICY, "analysis": {**POLICY["analysis"], "window_s": 30}}
    service = service_copy(policy=policy)
    good = deliver(service, tmp_path, "VERSION=1")
    assert good.outcome is Outcome.RELEASED, good.reason
    detected_after = {}
    for rate in ("0.1", "0.4"):
        bad = deliver(service, tmp_path, f"VERSION={rate}", f"ERROR_RATE={rate}",
                      "DEGRADE_AFTER_S=24")
        assert bad.outcome is Outcome.ROLLED_BACK, bad.reason
        assert "error-rate" in bad.reason
        stages = {s.name: s for s in bad.stages}
        # The candidate's container is gone after the rollback; it started in the preview
        # stage, at the same offset for both releases.
        degrades_at = max(stages["preview"].started_at + timedelta(seconds=24),
                          stages["verify"].started_at)
        failed = next(m for m in bad.measurements
                      if m.check == "error-rate" and m.phase == "Failed")
        caught_at = stages["verify"].started_at + timedelta(seconds=failed.elapsed_s)
        detected_after[rate] = (caught_at - degrades_at).total_seconds()
    interval = FAST_POLICY["analysis"]["interval_s"]
    assert abs(detected_after["0.1"] - detected_after["0.4"]) <= interval, detected_after
    assert max(detected_after.values()) <= 3 * interval, detected_after
