"""Every numbered example (``examples/NN-name/``) delivered on the real local stack, each
checked against its ``expected.yaml`` (tests/example_cases.py says what the keys mean).

Each example gets its own copy of the sample service under a unique name (own route, own
ports, recorded for the session's cleanup) with the short FAST_POLICY windows, so examples
are independent of each other and of other tests and can run in parallel."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from runbook import stack
from runbook.models import Outcome, RunReport
from runbook.settings import StackSettings
from runbook_cli.exit_codes import exit_code_for
from tests.delivery import deliver, runbook, version_at
from tests.example_cases import Example, Expected, example_dirs, load_example, version_of
from tests.traffic import ContinuousClient

pytestmark = [pytest.mark.stack, pytest.mark.independent]
ENV = "staging"
MIN_CLIENT_REQUESTS = 100
"""A traffic check that measured (almost) nothing proves nothing."""
CLIENT_TAIL_S = 1.0
"""The client keeps requesting this long after the run, so a drop right at its end counts."""


@pytest.fixture(params=example_dirs(), ids=lambda path: path.name)
def example(request: pytest.FixtureRequest) -> Example:
    return load_example(request.param)


class Run:
    """One example on the stack: the service copy, the release live before, the report."""

    def __init__(self, example: Example, service_dir: Path, tmp_path: Path) -> None:
        self.example = example
        self.expected: Expected = example.expected
        self.service_dir = service_dir
        self.tmp_path = tmp_path
        self.base = yaml.safe_load((service_dir / "service.yaml").read_text())
        self.name = str(self.base["name"])
        self.spec = example.spec(self.base)
        self.before: RunReport | None = None
        self.client: ContinuousClient | None = None

    def deliver_before(self) -> None:
        report, code = deliver(self.service_dir, self.tmp_path,
                               strategy=self.expected.strategy.value)
        assert (report.outcome, code) == (Outcome.RELEASED, 0), report.reason
        self.before = report

    def deliver_release(self) -> tuple[RunReport, int]:
        if (self.expected.serves and self.before is not None and self.spec != self.base
                and version_of(self.spec) == version_of(self.base)):
            pytest.fail(f"{self.example.name}: give the release its own build.args.VERSION, "
                        "or `serves` cannot tell it from the release before")
        (self.service_dir / "service.yaml").write_text(yaml.safe_dump(self.spec))
        with self._traffic():
            report, code = deliver(self.service_dir, self.tmp_path,
                                   strategy=self.expected.strategy.value)
            if self.expected.rollback_by_hand:
                self._rollback_by_hand(report)
        return report, code

    @contextmanager
    def _traffic(self) -> Iterator[None]:
        if not self.expected.measures_traffic:
            yield
            return
        assert self.before is not None
        with ContinuousClient(str(self.before.endpoint)) as self.client:
            yield
            time.sleep(CLIENT_TAIL_S)

    def _rollback_by_hand(self, report: RunReport) -> None:
        assert self.before is not None and report.endpoint is not None
        assert version_at(str(report.endpoint)) == version_of(self.spec)
        back = runbook("rollback", self.name, "--env", ENV, "--to", str(self.before.revision))
        assert back.returncode == 0, back.stdout + back.stderr
        assert version_at(str(report.endpoint)) == version_of(self.base)
        status = self.status()
        assert status["live"]["revision"] == self.before.revision
        assert status["standby"]["revision"] == report.revision
        forth = runbook("rollback", self.name, "--env", ENV)
        assert forth.returncode == 0, forth.stdout + forth.stderr

    def status(self) -> dict[str, Any]:
        done = runbook("status", self.name, "--env", ENV)
        return json.loads(done.stdout)

    def revision_of(self, which: str, report: RunReport) -> str | None:
        if which == "none":
            return None
        if which == "before":
            assert self.before is not None
            return self.before.revision
        return report.revision


def test_example(example: Example, stack_settings: StackSettings,
                 sample_service: Callable[..., Path], tmp_path: Path) -> None:
    run = Run(example, sample_service(), tmp_path)
    if example.expected.live_before:
        run.deliver_before()
    report, code = run.deliver_release()

    check_report(run, report, code)
    check_afterwards(run, report, stack_settings)


def check_report(run: Run, report: RunReport, code: int) -> None:
    expected, before = run.expected, run.before
    assert report.outcome in expected.outcomes, report.reason
    assert code == exit_code_for(report.outcome), (code, report.outcome)
    if report.outcome is Outcome.RELEASED:
        assert report.image and "@sha256:" in report.image, report.image
    if before is not None and report.endpoint is not None:
        assert report.endpoint == before.endpoint  # stable across releases
    if expected.reason is not None:
        assert report.reason == expected.reason
    if expected.reason_contains:
        assert any(text in report.reason for text in expected.reason_contains), report.reason
    _check_revisions(run, report)
    if expected.failed_gates is not None:
        assert [g.name for g in report.gates if not g.passed] == expected.failed_gates
    gates = {g.name: g for g in report.gates}
    for name, gate in expected.gates.items():
        assert gates[name].passed is gate.passed, gates[name]
        if gate.min_value is not None:
            assert float(gates[name].value or 0) >= gate.min_value, gates[name]
    stages = {s.name: s for s in report.stages}
    for name, status in expected.stages.items():
        if status == "absent":
            assert name not in stages, stages[name]
        else:
            assert stages[name].status.value == status, stages[name]
    for name, text in expected.stage_details.items():
        assert text in stages[name].detail, stages[name]


def _check_revisions(run: Run, report: RunReport) -> None:
    expected, before = run.expected, run.before
    if expected.revision == "new":
        assert report.revision is not None
        assert before is None or report.revision != before.revision
    elif expected.revision == "before":
        assert before is not None and report.revision == before.revision
    elif expected.revision == "none":
        assert report.revision is None
    if expected.previous is not None:
        assert report.previous == run.revision_of(expected.previous, report)
    if expected.image == "new":
        assert before is None or report.image != before.image
    elif expected.image == "before":
        assert before is not None and report.image == before.image
    if report.image is not None:
        # Whatever the outcome, the report names the revision the run delivered.
        assert report.candidate is not None
        if report.outcome is Outcome.ROLLED_BACK:
            assert report.candidate != report.revision
        if report.outcome is Outcome.RELEASED:
            assert report.candidate == report.revision


def check_afterwards(run: Run, report: RunReport, settings: StackSettings) -> None:
    expected = run.expected
    endpoint = str(report.endpoint or (run.before.endpoint if run.before else ""))
    if expected.serves == "nothing":
        assert httpx.get(endpoint + "/", timeout=5).status_code == 503
    elif expected.serves is not None:
        spec = run.spec if expected.serves == "release" else run.base
        assert version_at(endpoint) == version_of(spec)
    if expected.status is not None:
        status = run.status()
        assert status["live"]["revision"] == run.revision_of(expected.status.live, report)
        standby = run.revision_of(expected.status.standby, report)
        assert (status["standby"] or {}).get("revision") == standby, status
    if run.client is not None:
        _check_traffic(expected, run.client)
    if expected.rebuilt is not None:
        cached = _task_run_states(report)["build_image"] == ["Cached"]
        assert cached is not expected.rebuilt
    for task, attempts in expected.task_runs.items():
        assert _task_run_counts(report)[task] == [attempts]
    if expected.restored_by_stack_up:
        _check_restored_by_stack_up(run, report, settings, endpoint)


def _check_traffic(expected: Expected, client: ContinuousClient) -> None:
    assert client.ok > MIN_CLIENT_REQUESTS, f"{client.ok} ok requests only"
    if expected.dropped_requests is not None:
        assert len(client.dropped) == expected.dropped_requests, (
            f"{len(client.dropped)} dropped of {client.total}: {client.dropped[:10]}")
    if expected.app_errors is not None:
        assert len(client.app_errors) == expected.app_errors


def _check_restored_by_stack_up(run: Run, report: RunReport, settings: StackSettings,
                                endpoint: str) -> None:
    client = docker.DockerClient(base_url=settings.docker_host, timeout=30)
    try:
        assert len(_running(client, run.name, report.revision)) == 1
        _running(client, run.name, report.revision)[0].stop(timeout=5)
        assert _running(client, run.name, report.revision) == []
        deployments = {s.name: s for s in stack.up(settings)}["deployments"]
        # Running again: restarted by this `stack up`, or by a concurrent one of another
        # test session (then this one finds it "already running"); either way by `stack up`.
        assert deployments.healthy, deployments
        assert len(_running(client, run.name, report.revision)) == 1, deployments
    finally:
        client.close()
    assert version_at(endpoint) == version_of(run.spec)


def _running(client: docker.DockerClient, service: str, revision: str | None) -> list[Any]:
    return client.containers.list(filters={"label": [
        f"io.runbook.service={service}", f"io.runbook.environment={ENV}",
        f"io.runbook.revision={revision}"]})


def _task_runs(report: RunReport) -> list:  # type: ignore[type-arg]
    flow_run_id = str(report.flow_run_url).rstrip("/").rsplit("/", 1)[-1]
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def _task_run_counts(report: RunReport) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {}
    for task_run in _task_runs(report):
        counts.setdefault(task_run.name.rsplit("-", 1)[0], []).append(task_run.run_count)
    return counts


def _task_run_states(report: RunReport) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for task_run in _task_runs(report):
        states.setdefault(task_run.name.rsplit("-", 1)[0], []).append(task_run.state.name)
    return states
