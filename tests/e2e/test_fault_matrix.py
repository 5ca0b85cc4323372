"""The fault matrix (issue 12, docs/fault-matrix.md): each component of the stack unavailable
or answering 5xx / 429 at the stage that uses it, and SIGKILL of the run before and after
the traffic switch. For every row: the outcome, exactly one alert per problem (delivered or
waiting in the outbox), and traffic on exactly one revision that is verified or the
previous one.

Affordable: the rows that fail before anything moves run the pipeline flow in-process; the
rows that need a broken router run against a private HAProxy (its own state directory,
ports and admin socket, so the shared router is never touched); only the SIGKILL rows run
`runbook pipeline` as a process. Channels are local stand-ins speaking the Slack and
PagerDuty protocols; every test keeps its alerts in its own state directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prefect import flow
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flows.locks import one_deploy_at_a_time
from flows.maintenance import tidy
from flows.pipeline import pipeline
from runbook.adapters import docker_engine
from runbook.alerts.notifier import Notifier
from runbook.alerts.settings import AlertSettings
from runbook.build import repository
from runbook.models import ImageRef, Outcome, RunReport, StageStatus
from runbook.policy import DeploySettings
from runbook.release_record import ReleasePhase, ReleaseRecord, ReleaseRecords, state_store
from runbook.router import HAProxyRouter
from runbook.service import load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook.targets import make_target
from runbook_cli.exit_codes import ExitCode
from tasks.notify import flush_outbox

pytestmark = pytest.mark.stack
RUNBOOK = str(Path(sys.executable).parent / "runbook")
SLOT_FREE_WITHIN_S = 60


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Channels:
    """Slack and PagerDuty stand-ins; ``script`` sets the next answers (then 200 / 202)."""

    def __init__(self, server: HTTPServer) -> None:
        self.slack: list[tuple[int, dict]] = []
        self.pagerduty: list[tuple[int, dict]] = []
        self.script: dict[str, list[int]] = {"slack": [], "pagerduty": []}
        server.expect_request("/api/chat.postMessage", method="POST").respond_with_handler(
            self._slack)
        server.expect_request("/v2/enqueue", method="POST").respond_with_handler(self._pd)
        self.server = server

    def env(self, state: Path, *, pagerduty: bool = False) -> dict[str, str]:
        env = {"RUNBOOK_ALERT_STATE_DIR": str(state),
               "RUNBOOK_ALERT_SLACK_TOKEN": "xoxb-fault-matrix",
               "RUNBOOK_ALERT_SLACK_BASE_URL": self.server.url_for("/api/"),
               "RUNBOOK_ALERT_MAX_ATTEMPTS": "2", "RUNBOOK_ALERT_BACKOFF_S": "0.2",
               "RUNBOOK_ALERT_MAX_BACKOFF_S": "1", "RUNBOOK_ALERT_TIMEOUT_S": "3"}
        if pagerduty:
            env |= {"RUNBOOK_ALERT_PAGERDUTY_ROUTING_KEY": "fault-matrix",
                    "RUNBOOK_ALERT_PAGERDUTY_EVENTS_URL": self.server.url_for("/v2/enqueue")}
        return env

    def delivered(self, channel: str) -> list[dict]:
        calls = self.slack if channel == "slack" else self.pagerduty
        return [body for status, body in calls if status < 300]

    def _next(self, channel: str) -> int:
        return self.script[channel].pop(0) if self.script[channel] else 0

    def _slack(self, request: Request) -> Response:
        status = self._next("slack") or 200
        self.slack.append((status, json.loads(request.get_data())))
        body = {"ok": True, "ts": f"{time.time():.6f}"} if status < 300 else {"ok": False}
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _pd(self, request: Request) -> Response:
        status = self._next("pagerduty") or 202
        body = json.loads(request.get_data())
        self.pagerduty.append((status, body))
        return Response(json.dumps({"status": "success", "dedup_key": body["dedup_key"]}),
                        status=status, content_type="application/json",
                        headers={"Retry-After": "1"} if status == 429 else {})


@pytest.fixture
def channels(httpserver: HTTPServer) -> Channels:
    return Channels(httpserver)


def service_name(service_dir: Path) -> str:
    return str(yaml.safe_load((service_dir / "service.yaml").read_text())["name"])


def run_in_process(service_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   env: dict[str, str], *build_args: str,
                   environment: str = "staging") -> RunReport:
    """The pipeline flow in this process (no CLI): settings are read inside the run, so the
    fault is whatever ``env`` points at."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    report_path = tmp_path / f"report-{time.monotonic_ns()}.json"
    pipeline(service_dir=str(service_dir), environment=environment,
             build_args=dict(arg.split("=", 1) for arg in build_args),
             report_path=str(report_path), return_state=True)
    return RunReport.model_validate_json(report_path.read_text())


def waiting(state: Path) -> list:  # type: ignore[type-arg]
    return Notifier(state, AlertSettings(_env_file=None)).outbox.pending()


def failed_stages(report: RunReport) -> list[str]:
    return [s.name for s in report.stages if s.status is StageStatus.FAILED]


# -- faults before anything moves --------------------------------------------------------


def test_registry_down_at_build_and_pushgateway_down_fail_the_run_with_two_alerts(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path,
    channels: Channels, monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = sample_service()
    state = tmp_path / "alerts"
    env = channels.env(state) | {"RUNBOOK_REGISTRY_PORT": str(closed_port()),
                                 "RUNBOOK_PUSHGATEWAY_PORT": str(closed_port())}

    report = run_in_process(service, tmp_path, monkeypatch, env, "VERSION=1")

    assert report.outcome is Outcome.FAILED and failed_stages(report) == ["build"]
    assert report.revision is None and report.endpoint is None  # a read made no route
    assert HAProxyRouter(stack_settings).route(service_name(service), "staging") is None
    summaries = sorted(m["text"] for m in channels.delivered("slack"))
    assert len(summaries) == 2, summaries  # the failed run, and the gap in the metrics
    assert any("pipeline failed" in s for s in summaries)
    assert any("not pushed" in s for s in summaries)
    assert waiting(state) == []


def test_engine_down_with_slack_5xx_pagerduty_429_and_smtp_down_keeps_one_alert_waiting(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path,
    channels: Channels, monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = sample_service()
    state = tmp_path / "alerts"
    env = channels.env(state, pagerduty=True) | {
        "RUNBOOK_DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "RUNBOOK_ALERT_SMTP_HOST": "127.0.0.1", "RUNBOOK_ALERT_SMTP_PORT": str(closed_port()),
        "RUNBOOK_ALERT_SMTP_TO": "oncall@example.org",
    }
    channels.script = {"slack": [503] * 10, "pagerduty": [429] * 10}

    report = run_in_process(service, tmp_path, monkeypatch, env, "VERSION=1",
                            environment="production")

    assert report.outcome is Outcome.FAILED and "Docker engine" in report.reason
    (entry,) = waiting(state)  # one problem, one alert: waiting, not lost
    assert entry.alert.kind.value == "pipeline_failure" and entry.alert.severity.value == \
        "critical"
    assert channels.delivered("slack") == [] and channels.delivered("pagerduty") == []

    channels.script = {"slack": [], "pagerduty": []}  # the channels are back
    flow(flush_outbox.fn)(RunbookSettings.load())
    assert waiting(state) == []
    assert len(channels.delivered("slack")) == 1
    (page,) = channels.delivered("pagerduty")
    assert page["event_action"] == "trigger" and page["dedup_key"] == entry.alert.dedup_key
    flow(flush_outbox.fn)(RunbookSettings.load())  # nothing is sent twice
    assert len(channels.delivered("slack")) == 1 and len(channels.delivered("pagerduty")) == 1


def test_a_manual_rollback_that_cannot_happen_and_a_failed_schedule_each_alert_once(
    stack_settings: StackSettings, tmp_path: Path, channels: Channels,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.maintenance import registry_cleanup
    from flows.rollback import rollback

    state = tmp_path / "alerts"
    for key, value in channels.env(state).items():
        monkeypatch.setenv(key, value)
    name = f"test-never-{uuid.uuid4().hex[:6]}"  # never delivered: nothing kept

    refused = rollback(service=name, environment="staging", return_state=True)
    monkeypatch.setenv("RUNBOOK_REGISTRY_PORT", str(closed_port()))
    cleanup = registry_cleanup(services=[name], environments=["staging"],
                               return_state=True)

    assert refused.is_failed() and cleanup.is_failed()
    assert HAProxyRouter(stack_settings).route(name, "staging") is None  # reads made none
    texts = [m["text"] for m in channels.delivered("slack")]
    assert len(texts) == 2, texts
    assert "manual rollback FAILED: live now nothing" in texts[0]
    assert "registry-cleanup failed" in texts[1]
    assert waiting(state) == []
    bad_name = rollback(service="../etc", environment="staging", return_state=True)
    assert bad_name.is_failed() and "pattern" in str(bad_name.message)
    assert len(channels.delivered("slack")) == 2  # bad input is refused, nobody is woken


# -- faults after traffic moved, on a private router --------------------------------------


class PrivateStack:
    """A private HAProxy and state directory on the shared engine, registry and Prefect."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env

    @property
    def settings(self) -> StackSettings:
        return StackSettings(**{  # type: ignore[arg-type]
            "state_dir": self.env["RUNBOOK_STATE_DIR"],
            "router_metrics_port": int(self.env["RUNBOOK_ROUTER_METRICS_PORT"]),
            "route_port_min": int(self.env["RUNBOOK_ROUTE_PORT_MIN"]),
            "route_port_max": int(self.env["RUNBOOK_ROUTE_PORT_MAX"])})

    def version(self, name: str) -> str:
        route = HAProxyRouter(self.settings).route(name, "staging")
        assert route is not None
        return str(httpx.get(f"http://127.0.0.1:{route.port}/", timeout=5).json()["version"])

    def live(self, name: str) -> str | None:
        live = make_target("docker", RunbookSettings.of(self.settings)).live(name, "staging")
        return live.revision if live else None


@pytest.fixture
def private(stack_settings: StackSettings, sample_service: Callable[..., Path],
            tmp_path: Path) -> Iterator[tuple[PrivateStack, Path, str]]:
    """Release 1 of a sample service, verified, behind a private HAProxy."""
    env = {"RUNBOOK_STATE_DIR": str(tmp_path / "state"),
           "RUNBOOK_ROUTER_METRICS_PORT": str(closed_port()),
           "RUNBOOK_ROUTE_PORT_MIN": "19500", "RUNBOOK_ROUTE_PORT_MAX": "19599"}
    stack = PrivateStack(tmp_path, env)
    service = sample_service()
    spec = load_service(service).spec
    router = HAProxyRouter(stack.settings)
    router.start()
    try:
        revision = f"r1{uuid.uuid4().hex[:10]}"
        repo = repository(stack_settings.registry, spec.name)
        client = docker_engine.connect(stack_settings.docker_host)
        docker_engine.build(client, context=str(service), dockerfile="Dockerfile",
                            tag=f"{repo}:{revision}", build_args={"VERSION": "1"},
                            on_line=lambda _line: None)
        image = ImageRef(repository=repo, tag=revision,
                         digest=docker_engine.push(client, repo, revision))
        target = make_target("docker", RunbookSettings.of(stack.settings))
        deploy = DeploySettings(health_timeout_s=30)
        target.switch(target.deploy_candidate(spec, "staging", image, deploy), deploy)
        ReleaseRecords(state_store(stack.settings)).put(ReleaseRecord(
            service=spec.name, environment="staging", candidate=revision,
            phase=ReleasePhase.VERIFIED))
        yield stack, service, revision
    finally:
        make_target("docker", RunbookSettings.of(stack.settings)).decommission(spec.name, "staging")
        router.stop()


def test_prometheus_down_at_verify_rolls_back_to_the_verified_release(
    private: tuple[PrivateStack, Path, str], tmp_path: Path, channels: Channels,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack, service, first = private
    state = tmp_path / "alerts"
    env = stack.env | channels.env(state) | {"RUNBOOK_PROMETHEUS_PORT": str(closed_port())}

    report = run_in_process(service, tmp_path, monkeypatch, env, "VERSION=2")

    assert report.outcome is Outcome.ROLLED_BACK, report.reason
    assert (report.revision, report.previous) == (first, first)
    assert stack.live(service_name(service)) == first and stack.version(
        service_name(service)) == "1"
    (message,) = channels.delivered("slack")
    assert "rolled back" in message["text"]
    assert waiting(state) == []


def test_router_socket_lost_at_the_switch_back_ends_rollback_failed_then_tidy_recovers(
    private: tuple[PrivateStack, Path, str], tmp_path: Path, channels: Channels,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack, service, first = private
    name = service_name(service)
    state = tmp_path / "alerts"
    env = stack.env | channels.env(state) | {"RUNBOOK_PROMETHEUS_PORT": str(closed_port())}
    router = HAProxyRouter(stack.settings)
    admin = router.socket_of(name, "staging")  # the route's own process
    hidden = admin.with_name(f"{admin.name}.hidden")
    records = ReleaseRecords(state_store(stack.settings))

    def lose_the_socket_once_promoted() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            record = records.get(name, "staging")
            route = router.route(name, "staging")
            live = route.live() if route else None
            if (record is not None and record.phase is ReleasePhase.PROMOTED_UNVERIFIED
                    and live is not None and record.candidate in live.name):
                admin.rename(hidden)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=lose_the_socket_once_promoted, daemon=True)
    watcher.start()
    try:
        report = run_in_process(service, tmp_path, monkeypatch, env, "VERSION=2")
    finally:
        watcher.join(5)
        if hidden.exists():
            hidden.rename(admin)

    assert report.outcome is Outcome.ROLLBACK_FAILED, report.reason
    second = records.get(name, "staging")
    assert second is not None and second.phase is ReleasePhase.PROMOTED_UNVERIFIED
    assert report.revision == second.candidate and f"live now: {second.candidate}" in \
        report.reason
    (message,) = channels.delivered("slack")
    assert message["text"].startswith("[CRITICAL]") and "rollback FAILED" in message["text"]

    # The socket is back: the scheduled tidy rolls the unverified release back by itself.
    tidy(services=[name], environments=["staging"], target="docker")

    assert stack.live(name) == first and stack.version(name) == "1"
    assert records.get(name, "staging").phase is ReleasePhase.ROLLED_BACK  # type: ignore[union-attr]
    texts = [m["text"] for m in channels.delivered("slack")]
    assert len(texts) == 2 and "left unverified by a dead run" in texts[1]
    assert waiting(state) == []


# -- SIGKILL of `runbook pipeline` before and after the switch ----------------------------


def start_cli(service_dir: Path, tmp_path: Path, env: dict[str, str],
              *build_args: str) -> tuple[subprocess.Popen[str], Path]:
    report = tmp_path / f"report-{time.monotonic_ns()}.json"
    command = [RUNBOOK, "pipeline", str(service_dir), "--env", "staging", "--report",
               str(report)]
    for arg in build_args:
        command += ["--build-arg", arg]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, **env}, start_new_session=True)
    return process, report


def finish_cli(process: subprocess.Popen[str], report: Path) -> tuple[RunReport, int]:
    code = process.wait(600)
    return RunReport.model_validate_json(report.read_text()), code


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool]) -> float:
    """SIGKILL the run (its whole process group, as an OOM kill of the pod) once ``ready``."""
    deadline = time.monotonic() + 400
    while not ready():
        assert process.poll() is None, "the run ended before the moment to kill it"
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    return time.monotonic()


def test_sigkill_before_and_after_the_switch_never_leaves_an_unverified_release_live(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path,
    channels: Channels,
) -> None:
    service = sample_service()
    name = service_name(service)
    state = tmp_path / "alerts"
    env = channels.env(state)
    records = ReleaseRecords(state_store(stack_settings))
    first_run, first_report = start_cli(service, tmp_path, env, "VERSION=1")
    first, code = finish_cli(first_run, first_report)
    assert (first.outcome, code) == (Outcome.RELEASED, 0), first.reason
    endpoint = str(first.endpoint)

    def version() -> str:
        """The revision label serving the endpoint (a bad release's 500s say nothing)."""
        for _ in range(20):
            try:
                response = httpx.get(endpoint + "/", timeout=5)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                return str(response.json()["version"])
        return "unknown"

    bad = ("VERSION=2", "ERROR_RATE=0.4", "DEGRADE_AFTER_S=14")

    # Before the switch: killed while the candidate is previewed. Nothing moved.
    run, _ = start_cli(service, tmp_path, env, *bad)
    kill_when(run, lambda: (r := records.get(name, "staging")) is not None
              and r.phase is ReleasePhase.PREVIEWING)
    assert version() == "1"

    # After the switch: the bad release serves, unverified, and its run is killed.
    run, _ = start_cli(service, tmp_path, env, *bad)
    killed = kill_when(run, lambda: version() == "2")
    record = records.get(name, "staging")
    assert record is not None and record.phase is ReleasePhase.PROMOTED_UNVERIFIED

    @flow
    def wait_for_the_slot() -> float:
        with one_deploy_at_a_time(name, "staging", SLOT_FREE_WITHIN_S * 2, stack_settings):
            return time.monotonic() - killed

    free_after_s = wait_for_the_slot()
    print(f"deploy slot of the killed run free after {free_after_s:.1f} s")
    assert free_after_s < SLOT_FREE_WITHIN_S

    # The rerun: never "released / already live"; the interrupted release is rolled back
    # first, then delivered again from the start, and its verification says no.
    rerun, rerun_report = start_cli(service, tmp_path, env, *bad)
    again, code = finish_cli(rerun, rerun_report)
    assert again.outcome is Outcome.ROLLED_BACK and code == ExitCode.ROLLED_BACK, again.reason
    recover = next(s for s in again.stages if s.name == "recover")
    assert record.candidate in recover.detail and f"back on {first.revision}" in recover.detail
    assert version() == "1" and again.revision == first.revision
    texts = [m["text"] for m in channels.delivered("slack")]
    # Two problems, two alerts: the interrupted release, and the bad release rolled back.
    assert len(texts) == 2, texts
    assert "left unverified by a dead run" in texts[0] and "rolled back" in texts[1]
    assert waiting(state) == []
