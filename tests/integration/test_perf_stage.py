"""The perf stage against real things: Locust subprocesses (standalone and distributed), the
sample service's real containers (slow, failing and good releases), stored baselines, and the
HAProxy router proving the load reaches the preview slot only."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prometheus_client.parser import text_string_to_metric_families

from runbook.adapters import docker_engine
from runbook.build import repository
from runbook.gates import describe_failures, failed, perf_gates
from runbook.models import ImageRef, PerfReport, TargetKind
from runbook.perf.baseline import BaselineStore
from runbook.perf.degradation import judge_degradation
from runbook.perf.docker_stats import DockerStatsSampler
from runbook.perf.locustfile import resolve_locustfile
from runbook.perf.runner import LocustJob, run_locust
from runbook.perf.stats import LoadProgress, read_latency_us
from runbook.policy import PerfSettings, Thresholds
from runbook.service import load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from tests.conftest import SAMPLE

PATHS = ["/", "/api/answer?q=status"]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def local_server() -> Iterator[str]:
    with _serving(_Handler) as url:
        yield url


def load(host: str, workdir: Path, paths: list[str], workers: int = 0, duration_s: float = 3,
         users: int = 2, on_progress=None) -> PerfReport:  # type: ignore[no-untyped-def]
    locustfile = resolve_locustfile(workdir, None, paths, 10, workdir, think_time_s=0.05)
    job = LocustJob(host=host, locustfile=locustfile, users=users, spawn_rate=users,
                    duration_s=duration_s, workdir=workdir, workers=workers)
    return run_locust(job, on_progress)


def test_locust_reports_endpoints_and_live_progress(local_server: str, tmp_path: Path) -> None:
    readings: list[LoadProgress] = []
    report = load(local_server, tmp_path, ["/", "/missing"], on_progress=readings.append)
    assert {e.name for e in report.endpoints} == {"GET /", "GET /missing"}
    missing = next(e for e in report.endpoints if e.name == "GET /missing")
    assert missing.failures == missing.requests > 0
    assert report.error_rate == pytest.approx(0.5, abs=0.05)
    assert report.p50_latency_s is not None and report.rps > 0
    assert "404" in report.failure_samples[0]
    # Locust's start-up alone takes seconds on a busy machine: "live" is a reading taken
    # while requests were still coming, whatever the clock said.
    live = [r for r in readings[:-1] if 0 < r.requests < readings[-1].requests]
    assert live, f"no live reading before the end: {readings}"
    assert readings[-1].fraction == 1.0


def test_a_slow_start_does_not_shorten_the_test(local_server: str, tmp_path: Path) -> None:
    """Locust's --run-time counted from gevent's cached clock: a locustfile whose import
    spins for 3 s (a slow start on a busy machine) made a 4 s test last ~1 s."""
    locustfile = resolve_locustfile(tmp_path, None, ["/"], 10, tmp_path, think_time_s=0.05)
    locustfile.write_text("import time\n_end = time.monotonic() + 3\n"
                          "while time.monotonic() < _end:\n    pass\n"
                          + locustfile.read_text())
    report = run_locust(LocustJob(host=local_server, locustfile=locustfile, users=2,
                                  spawn_rate=20, duration_s=4, workdir=tmp_path))
    assert report.duration_s > 3.5, f"the load ran {report.duration_s:.1f} s of 4"


def test_distributed_mode_with_one_worker(local_server: str, tmp_path: Path) -> None:
    report = load(local_server, tmp_path, ["/"], workers=1, duration_s=2)
    assert report.requests > 0 and report.failures == 0
    assert report.tool.endswith("1 workers")
    assert (tmp_path / "worker-0.log").exists()
    _assert_microsecond_times(tmp_path, report)
    assert report.timed_at_connection == report.requests  # the worker's counts reach the file


def _assert_microsecond_times(workdir: Path, report: PerfReport) -> None:
    """The plugin's histogram covers every request (the worker's last report included)."""
    fine = read_latency_us(workdir / "latency_us.json")
    assert sum(fine["GET /"].values()) == report.requests
    assert any(us % 1000 for us in fine["GET /"]), "only whole milliseconds recorded"


def test_service_locustfile_with_httpuser_still_works(local_server: str, tmp_path: Path) -> None:
    own = tmp_path / "load.py"
    own.write_text("from locust import HttpUser, constant, task\n\n\n"
                   "class Own(HttpUser):\n    wait_time = constant(0.05)\n\n"
                   "    @task\n    def root(self):\n        self.client.get('/')\n")
    locustfile = resolve_locustfile(tmp_path, "load.py", ["/unused"], 10, tmp_path)
    report = run_locust(LocustJob(host=local_server + "/", locustfile=locustfile, users=2,
                                  spawn_rate=2, duration_s=2, workdir=tmp_path))
    assert report.requests > 0 and report.failures == 0
    _assert_microsecond_times(tmp_path, report)
    assert report.timed_at_connection == 0  # requests' sockets: Locust's own times


SLOW_CLIENT = """
import time
import geventhttpclient.client
from locust import FastHttpUser, constant, task

# Client-side work inside Locust's timed span but before the request reaches its socket.
_build = geventhttpclient.client.HTTPClient._build_request
def _slow_build(self, *args, **kwargs):
    time.sleep(0.06)
    return _build(self, *args, **kwargs)
geventhttpclient.client.HTTPClient._build_request = _slow_build


class Slow(FastHttpUser):
    wait_time = constant(0.02)

    @task
    def plain(self):
        self.client.get("/delay", name="plain")

    @task
    def caught(self):
        # Reported when the block ends, after more client work.
        with self.client.get("/delay", name="caught", catch_response=True):
            time.sleep(0.06)
"""


class _DelayedHandler(_Handler):
    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: with Nagle's algorithm the body would wait
        # for the client's delayed ACK (~40 ms), a real stall of the server's making.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        time.sleep(0.02)
        super().do_GET()


def _load_delayed_server(workdir: Path, locustfile_source: str) -> PerfReport:
    """Two users of the given locustfile, 3 s against a server answering in 20 ms."""
    own = workdir / "own_locustfile.py"
    own.write_text(locustfile_source)
    locustfile = resolve_locustfile(workdir, own.name, ["/unused"], 10, workdir)
    with _serving(_DelayedHandler) as url:
        return run_locust(LocustJob(host=url, locustfile=locustfile, users=2, spawn_rate=2,
                                    duration_s=3, workdir=workdir))


def _locusts_own(workdir: Path, name: str) -> dict[str, Any]:
    """Locust's own statistics of one endpoint (its --json-file)."""
    entries = json.loads((workdir / "locust.json").read_text())
    return next(e for e in entries if e["name"] == name)


def test_fasthttpuser_requests_are_timed_at_the_connection(tmp_path: Path) -> None:
    """The service's 20 ms, not the client's 60 ms of work around the request (wrk's and
    k6's measure); Locust's own statistics keep its time."""
    report = _load_delayed_server(tmp_path, SLOW_CLIENT)
    fine = read_latency_us(tmp_path / "latency_us.json")
    for name in ("GET plain", "GET caught"):
        endpoint = next(e for e in report.endpoints if e.name == name)
        assert endpoint.requests > 0 and endpoint.failures == 0
        assert sum(fine[name].values()) == endpoint.requests
        assert endpoint.p50_latency_s is not None and 0.020 <= endpoint.p50_latency_s < 0.045
    plain = _locusts_own(tmp_path, "plain")
    assert plain["total_response_time"] / plain["num_requests"] >= 80  # 60 + 20 ms


BUSY_NEIGHBOUR = """
import time
from locust import FastHttpUser, User, constant, task


class Measured(FastHttpUser):
    wait_time = constant(0.01)

    @task
    def delayed(self):
        self.client.get("/delay", name="delayed")


class Busy(User):
    # Holds the event loop 100 ms at a time, as a slow user would: a response that arrives
    # meanwhile waits in the socket until the loop is free again.
    wait_time = constant(0.001)

    @task
    def spin(self):
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:
            pass
"""


def test_a_response_is_timed_when_it_arrived_not_when_a_busy_process_read_it(
    tmp_path: Path,
) -> None:
    """Kernel receive times (SO_TIMESTAMPNS): the service's 20 ms, whatever else the
    Locust process was doing when the response came.

    The busy user holds back nearly every response (Locust's own mean is ~100 ms), so the
    median tells the two clocks apart. A higher percentile of ~10 requests is their
    maximum: in the parallel suite on 2 cores this test's server thread (in the pytest
    process) once answered one of them late, 76 ms, a real delay the kernel time rightly
    kept."""
    report = _load_delayed_server(tmp_path, BUSY_NEIGHBOUR)
    delayed = next(e for e in report.endpoints if e.name == "GET delayed")
    assert delayed.requests > 5
    assert report.timed_at_connection == delayed.requests
    assert delayed.p50_latency_s is not None and 0.020 <= delayed.p50_latency_s < 0.045
    measured = _locusts_own(tmp_path, "delayed")
    held_back_ms = measured["total_response_time"] / measured["num_requests"]
    assert held_back_ms >= 60, "the busy user did not hold responses back"


def test_stored_reports_baseline_is_the_last_released(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)

    def stored(avg: float, p95: float) -> PerfReport:
        return PerfReport(requests=100, failures=0, duration_s=10, avg_latency_s=avg,
                          p95_latency_s=p95, max_latency_s=p95)

    store.save("svc", "staging", "rev1", stored(0.2, 0.4))
    assert store.baseline("svc", "staging") is None
    assert store.mark_released("svc", "staging", "rev1")
    store.save("svc", "staging", "rev2", stored(0.2, 0.64))  # tested, never released
    baseline = store.baseline("svc", "staging")
    assert baseline is not None and baseline.revision == "rev1"

    def verdict(p95: float) -> bool:
        return judge_degradation(stored(0.2, p95), baseline.report, baseline.revision,
                                 Thresholds()).critical

    assert verdict(0.4 * 1.6) and not verdict(0.4 * 1.3)
    assert [s.revision for s in store.history("svc", "staging")] == ["rev1", "rev2"]
    assert store.baseline("svc", "production") is None
    assert not store.mark_released("svc", "staging", "never-tested")


# -- real containers of the sample service -------------------------------------------------


@pytest.fixture(scope="module")
def engine(stack_settings: StackSettings) -> docker.DockerClient:
    return docker_engine.connect(stack_settings.docker_host)


def build_sample(client: docker.DockerClient, tag: str, **args: str) -> str:
    docker_engine.build(client, str(SAMPLE), "Dockerfile", tag, args, on_line=lambda _: None)
    return tag


@pytest.fixture
def run_sample(engine: docker.DockerClient) -> Iterator:  # type: ignore[type-arg]
    started = []

    def run(image: str) -> tuple[str, object]:
        container = engine.containers.run(
            image, detach=True, name=f"perf-test-{uuid.uuid4().hex[:8]}",
            ports={"8080/tcp": ("127.0.0.1", None)}, nano_cpus=1_000_000_000,
            mem_limit="256m",
        )
        started.append(container)
        deadline = time.monotonic() + 30
        while True:
            container.reload()
            bindings = container.ports.get("8080/tcp")
            if bindings:
                url = f"http://127.0.0.1:{bindings[0]['HostPort']}"
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        return url, container
                except httpx.HTTPError:
                    pass
            assert time.monotonic() < deadline, "sample service never became healthy"
            time.sleep(0.3)

    yield run
    for container in started:
        container.remove(force=True)


@pytest.mark.stack
@pytest.mark.parametrize(("args", "failing"), [
    ({"LATENCY_MS": "2500"}, "perf_avg_latency_s"),
    ({"ERROR_RATE": "0.05"}, "perf_error_rate"),
    ({}, None),
], ids=["slow", "errors", "good"])
def test_release_gates_against_real_containers(
    engine: docker.DockerClient, run_sample, tmp_path: Path,  # type: ignore[no-untyped-def]
    args: dict[str, str], failing: str | None,
) -> None:
    image = build_sample(engine, f"runbook-perf-test:{'-'.join(args.values()) or 'good'}",
                         **args)
    url, container = run_sample(image)
    with DockerStatsSampler(container) as sampler:
        report = load(url, tmp_path, PATHS, duration_s=5, users=2)
    report = report.model_copy(update={"resources": sampler.usage()})
    gates = perf_gates(report, Thresholds())
    assert [g.name for g in failed(gates)] == ([failing] if failing else []), gates
    assert report.resources is not None and report.resources.samples >= 2
    assert report.resources.memory_max_pct is not None
    if failing == "perf_avg_latency_s":
        assert report.avg_latency_s is not None and report.avg_latency_s >= 2.5
        assert f"perf_avg_latency_s={round(report.avg_latency_s, 4)}" in describe_failures(gates)
    if failing == "perf_error_rate":
        assert report.error_rate == pytest.approx(0.05, abs=0.02)


# -- the perf stage (the Prefect task) loads the preview slot only --------------------------


def traffic_served(slot_address: str) -> int:
    """Requests the revision's own app counted, health checks and scrapes left out. Read
    from the app, not from HAProxy: a concurrent test's route change reloads HAProxy, whose
    counters then start again from zero."""
    text = httpx.get(f"http://{slot_address}/metrics", timeout=5).text
    return sum(int(sample.value) for family in text_string_to_metric_families(text)
               if family.name == "http_requests" for sample in family.samples
               if sample.name == "http_requests_total"
               and sample.labels["path"] not in ("/health", "/metrics"))


def traffic_served_reaches(slot_address: str, count: int, deadline_s: float = 5.0) -> int:
    """The count once it is at least ``count``, or what it is at the deadline: the app
    counts a request after its response is sent."""
    deadline = time.monotonic() + deadline_s
    while (served := traffic_served(slot_address)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return served


@pytest.mark.stack
def test_perf_stage_loads_the_preview_and_never_the_live_color(
    engine: docker.DockerClient, stack_settings: StackSettings, tmp_path: Path,
) -> None:
    from runbook.targets import make_target
    from tasks.perf import load_test_preview

    name = f"perf-{uuid.uuid4().hex[:6]}"
    service_dir = tmp_path / "svc"
    service_dir.mkdir()
    for item in ("Dockerfile", "app.py"):
        (service_dir / item).write_text((SAMPLE / item).read_text())
    (service_dir / "tests").mkdir()
    (service_dir / "service.yaml").write_text(
        f"name: {name}\nport: 8080\nhealth_path: /health\ntraffic:\n  paths: {PATHS}\n")
    service = load_service(service_dir)
    target = make_target(TargetKind.DOCKER, RunbookSettings.of(stack_settings))
    repo = repository(stack_settings.registry, name)

    def image(version: str) -> ImageRef:
        tag = f"v{version}"
        docker_engine.build(engine, str(service_dir), "Dockerfile", f"{repo}:{tag}",
                            {"VERSION": version}, on_line=lambda _: None)
        return ImageRef(repository=repo, tag=tag,
                        digest=docker_engine.push(engine, repo, tag))

    try:
        live = target.deploy_candidate(service.spec, "staging", image("1"), _deploy_settings())
        target.switch(live, _deploy_settings())
        candidate = target.deploy_candidate(service.spec, "staging", image("2"),
                                            _deploy_settings())
        preview_url = target.preview_url(name, "staging")
        before = traffic_served(live.address)
        preview_before = traffic_served(candidate.address)

        @flow(name="perf-stage-test")
        def perf_stage() -> PerfReport:
            return load_test_preview(TargetKind.DOCKER, candidate, preview_url, service,
                                     PerfSettings(users=2, duration_s=3),
                                     RunbookSettings.of(stack_settings))

        report = perf_stage()
        assert report.requests > 0 and report.failures == 0
        assert report.resources is not None and report.resources.cpu_avg_pct is not None
        assert traffic_served_reaches(candidate.address, preview_before + report.requests) >= (
            preview_before + report.requests)
        assert traffic_served(live.address) == before
        assert preview_url != target.endpoint(name, "staging")
        progress = _progress_artifact(f"perf-progress-{name}-staging")
        assert progress == 100.0
    finally:
        target.decommission(name, "staging")


def _deploy_settings():  # type: ignore[no-untyped-def]
    from runbook.policy import DeploySettings

    return DeploySettings(health_timeout_s=20)


def _progress_artifact(key: str) -> float:
    import asyncio

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> float:
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            return float(artifacts[0].data)

    return asyncio.run(read())
