"""Many releases at once: N copies of the sample service delivered together through the
``pipeline/staging`` deployment of prefect.yaml, on a Prefect server backed by PostgreSQL.

Started here and removed afterwards: a private PostgreSQL cluster, a Prefect server on it,
the ``runbook-local`` process work pool with ``--workers`` process workers, and N copies of
``examples/agent-api`` (unique names, short perf and analysis windows). Everything else is
the local stack (``runbook stack up``: Docker engine, registry, router, Prometheus).

One batch of 1 release, then one batch of N, each from submission to the last run's end.
While they run, a client requests every endpoint that has a live revision and counts what
fails. Printed: both wall times and their ratio; orchestration overhead per release; the
p95 of a traffic switch (the ``promote`` stage); the failed requests; and last, exactly

    ratio: X
    failed requests: N

Definitions:

- wall time of a batch: from the submission of its runs to the end of the last one; it
  includes queueing on the deployment's concurrency limit, the workers' pickup and each
  flow process's start (Python, Prefect and runbook imports).
- orchestration overhead of a release: its flow run's wall time (Prefect's start_time,
  when the run enters Running, to its end_time) minus the time inside its stages, as a
  share of that wall time. It is everything the run does that is not stage work: the
  tasks and API calls before the first stage, the deploy slot (waiting for it, taking
  and giving it back) and the release record between stages, and the report, metrics
  and alert after the last one. Queueing before the run starts is not in it (it is in
  the batch's wall time). The time outside stages is also broken down by the Prefect
  task runs inside it; "untracked" is the rest (code between tasks, slot API calls).

The deployment's concurrency limit is set to ``--pipeline-limit`` (default: as many as
``--services``) after ``prefect deploy``: a limit below N makes a second wave that waits
``PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS`` (30 s) per retry, which is
queueing, not the cost of N releases.

    .venv/bin/python benchmarks/concurrent_releases.py [--services 8] [--workers 3]
        [--pipeline-limit N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runbook.models import RunReport  # noqa: E402
from runbook.router import HAProxyRouter  # noqa: E402
from runbook.settings import StackSettings  # noqa: E402
from runbook.settings_root import RunbookSettings  # noqa: E402
from tests.postgres_cluster import postgres_cluster  # noqa: E402

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

PREFECT = REPO / ".venv" / "bin" / "prefect"
SAMPLE = REPO / "examples" / "agent-api"
POOL = "runbook-local"
DEPLOYMENT = "pipeline/staging"
ENVIRONMENT = "staging"
# The release's logic with short fixed waits, as the end-to-end tests use (FAST_POLICY),
# and no guard: a guard is its own process and flow run after the release (600 s by
# default); nine of them querying Prometheus every 3 s would load the 2 cores the releases
# being measured share, and would outlive the benchmark's Prefect server.
POLICY = {"perf": {"users": 4, "duration_s": 4},
          "analysis": {"window_s": 15, "interval_s": 3, "guard_s": 0},
          "deploy": {"health_timeout_s": 30}}
# A fresh database runs its migrations first: 60-90 s here, minutes on a loaded machine.
SERVER_START_DEADLINE_S = 600
RUN_DEADLINE_S = 1800
CLIENT_INTERVAL_S = 0.05
ROUTES_REFRESH_S = 1.0  # a route gets a live revision at most this long before it is asked
WORKER_POLL_S = 2
CLIENT_TIMEOUT_S = 5.0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def prefect_server(database_url: str, home: Path) -> Iterator[dict[str, str]]:
    """A Prefect server on ``database_url``; yields the environment of its clients."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PYTHONPATH": str(REPO)}
    server_env = {**env, "PREFECT_API_DATABASE_CONNECTION_URL": database_url}
    with (home / "server.log").open("wb") as log:
        server = subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=server_env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_DEADLINE_S
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("Prefect server on PostgreSQL did not start: "
                                       + (home / "server.log").read_text()[-2000:]) from None
                time.sleep(1)
        yield env
    finally:
        stop(server)


def prefect(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(PREFECT), "--no-prompt", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=True).stdout


def service_copies(count: int, root: Path, prefix: str) -> list[Path]:
    copies = []
    for index in range(count):
        target = root / f"{prefix}-{index}"
        shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
        spec = yaml.safe_load((target / "service.yaml").read_text())
        spec["name"] = target.name
        spec["policy"] = POLICY
        (target / "service.yaml").write_text(yaml.safe_dump(spec))
        copies.append(target)
    return copies


class EndpointClient(threading.Thread):
    """Requests every endpoint of the benchmark's services that has a live revision."""

    def __init__(self, settings: StackSettings, prefix: str) -> None:
        super().__init__(daemon=True)
        self.router = HAProxyRouter(settings)
        self.prefix = prefix
        self.halt = threading.Event()
        self.answered = 0
        self.failures: list[str] = []

    def run(self) -> None:
        endpoints: list[str] = []
        listed_at = 0.0
        with httpx.Client() as http:
            while not self.halt.is_set():
                if time.monotonic() - listed_at >= ROUTES_REFRESH_S:
                    # Re-reading and validating the route table every 50 ms cost this
                    # process more CPU than the releases' load tests: the measurer must
                    # not compete with what it measures.
                    endpoints = [f"http://127.0.0.1:{route.port}/health"
                                 for route in self.router.routes()
                                 if route.service.startswith(self.prefix)
                                 and route.live() is not None]
                    listed_at = time.monotonic()
                for url in endpoints:
                    self._request(http, url)
                self.halt.wait(CLIENT_INTERVAL_S)

    def _request(self, http: httpx.Client, url: str) -> None:
        try:
            response = http.get(url, timeout=CLIENT_TIMEOUT_S)
        except httpx.HTTPError as exc:
            self._failed(f"{url}: {exc!r}")
            return
        if response.is_success:
            self.answered += 1
        else:
            self._failed(f"{url}: {response.status_code}")

    def _failed(self, what: str) -> None:
        # When, to set it against the stages of the releases.
        self.failures.append(f"{datetime.now(UTC).strftime('%H:%M:%S.%f')[:-3]} {what}")


class Release(NamedTuple):
    report: RunReport
    started: datetime  # the flow run's start (queueing and worker pickup excluded)
    ended: datetime
    tasks: list[tuple[str, datetime, datetime]]  # the run's task runs: name, start, end

    @property
    def wall_s(self) -> float:
        return (self.ended - self.started).total_seconds()

    def overhead_s(self) -> tuple[float, float, float]:
        """Time outside any stage: before the first, between stages, after the last."""
        stages = sorted(self.report.stages, key=lambda stage: stage.started_at)
        if not stages:
            return self.wall_s, 0.0, 0.0
        ends = [stage.started_at + timedelta(seconds=stage.duration_s) for stage in stages]
        between = sum(max(0.0, (later.started_at - end).total_seconds())
                      for end, later in zip(ends, stages[1:], strict=False))
        return ((stages[0].started_at - self.started).total_seconds(), between,
                (self.ended - max(ends)).total_seconds())

    @property
    def overhead_share(self) -> float:
        return sum(self.overhead_s()) / self.wall_s

    def outside_stages(self) -> list[tuple[datetime, datetime]]:
        stages = sorted(self.report.stages, key=lambda stage: stage.started_at)
        edges = [self.started]
        for stage in stages:
            edges += [stage.started_at, stage.started_at + timedelta(seconds=stage.duration_s)]
        edges.append(self.ended)
        return [(begin, end) for begin, end in zip(edges[::2], edges[1::2], strict=True)
                if end > begin]

    def outside_by_task(self) -> dict[str, float]:
        """Seconds outside stages spent in each task (by name), and the untracked rest."""
        spent: dict[str, float] = {}
        outside = self.outside_stages()
        for name, begin, end in self.tasks:
            overlap = sum(max(0.0, (min(end, o_end) - max(begin, o_begin)).total_seconds())
                          for o_begin, o_end in outside)
            if overlap > 0:
                spent[name] = spent.get(name, 0.0) + overlap
        total = sum((end - begin).total_seconds() for begin, end in outside)
        spent["untracked"] = max(0.0, total - sum(spent.values()))
        return spent


def run_batch(env: dict[str, str], services: list[Path], reports: Path
              ) -> tuple[float, list[Release]]:
    """All releases submitted at once; wall time to the last one's end, and each run's
    report with its own wall time (start to end, queueing excluded)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    started = time.monotonic()
    runs = []
    for service in services:
        report_path = reports / f"{service.name}.json"
        runs.append((run_deployment(DEPLOYMENT, timeout=0, parameters={
            "service_dir": str(service), "environment": ENVIRONMENT,
            "report_path": str(report_path)}), report_path))
    deadline = started + RUN_DEADLINE_S
    finished: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        while len(finished) < len(runs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"releases still running after {RUN_DEADLINE_S} s")
            # One query for every run still going, not one per run: 8 reads a second
            # were load on the server the releases share.
            waiting = [flow_run.id for flow_run, _ in runs if str(flow_run.id) not in finished]
            for state in read_flow_runs(client, waiting, deadline):
                if state.state is not None and state.state.is_final():
                    finished[str(state.id)] = time.monotonic()
            time.sleep(1)
        wall = max(finished.values()) - started
        results = []
        finals = {run.id: run for run in read_flow_runs(
            client, [flow_run.id for flow_run, _ in runs], deadline)}
        for flow_run, report_path in runs:
            final = finals[flow_run.id]
            if final.start_time is None or final.end_time is None:
                raise RuntimeError(f"flow run {final.id} has no start or end time")
            results.append(Release(RunReport.model_validate_json(report_path.read_text()),
                                   final.start_time, final.end_time, task_runs(client, final.id)))
    return wall, results


def read_flow_runs(client: SyncPrefectClient, ids: list[uuid.UUID], deadline: float
                   ) -> list[FlowRun]:
    """The flow runs of ``ids`` in one request; a server answering 5xx (it does at load
    average 25) is asked again."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.exceptions import PrefectHTTPStatusError

    while True:
        try:
            return client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
        except (PrefectHTTPStatusError, httpx.HTTPError) as exc:
            if time.monotonic() > deadline:
                raise
            print(f"reading {len(ids)} flow runs failed ({exc}); asking again", flush=True)
            time.sleep(2)


def task_runs(client: SyncPrefectClient, flow_run_id: uuid.UUID
              ) -> list[tuple[str, datetime, datetime]]:
    """The flow run's finished task runs, named without Prefect's "-abc" suffix."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
        id=FlowRunFilterId(any_=[flow_run_id])), limit=200)
    return [(run.name.rsplit("-", 1)[0], run.start_time, run.end_time) for run in runs
            if run.start_time is not None and run.end_time is not None]


def deployment_limit() -> int:
    """The limit prefect.yaml gives the deployment."""
    specs = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    staging = next(spec for spec in specs if spec["name"] == DEPLOYMENT.split("/")[1])
    return int(staging["concurrency_limit"]["limit"])


def set_deployment_limit(limit: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        client.update_deployment(deployment.id, DeploymentUpdate(concurrency_limit=limit))


def stage_means(one: list[Release], many: list[Release]) -> list[tuple[str, float, float]]:
    """Each stage's mean duration in the batch of 1 and the batch of N, in stage order."""
    def means(releases: list[Release]) -> dict[str, float]:
        spent: dict[str, list[float]] = {}
        for release in releases:
            for stage in release.report.stages:
                spent.setdefault(stage.name, []).append(stage.duration_s)
        return {name: statistics.fmean(values) for name, values in spent.items()}

    first, second = means(one), means(many)
    return [(name, first.get(name, 0.0), second[name]) for name in second]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def decommission(services: list[Path], settings: StackSettings) -> None:
    from runbook.targets import make_target

    target = make_target("docker", RunbookSettings.of(settings))
    for service in services:
        target.decommission(service.name, ENVIRONMENT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3, help="process workers of the pool")
    parser.add_argument("--pipeline-limit", type=int, default=None,
                        help="the deployment's concurrency limit (default: --services)")
    args = parser.parse_args()
    limit = args.pipeline_limit or args.services
    settings = StackSettings()
    prefix = f"bench-{uuid.uuid4().hex[:4]}"
    with ExitStack() as cleanup:
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="runbook-scale-")))
        database = cleanup.enter_context(postgres_cluster(database="prefect", user="prefect"))
        home = work / "prefect-home"
        home.mkdir()
        env = cleanup.enter_context(prefect_server(
            database.replace("+psycopg", "+asyncpg"), home))
        os.environ.update({k: env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME")})
        prefect(env, "work-pool", "create", POOL, "--type", "process", "--overwrite")
        prefect(env, "deploy", "--name", "staging")
        set_deployment_limit(limit)
        # Workers poll every 2 s instead of 15 s: the pickup delay is not what is measured.
        worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": str(WORKER_POLL_S)}
        for index in range(args.workers):
            log = cleanup.enter_context((work / f"worker-{index}.log").open("wb"))
            worker = subprocess.Popen(
                [str(PREFECT), "worker", "start", "--pool", POOL, "--type", "process",
                 "--name", f"{prefix}-worker-{index}"],
                cwd=REPO, env=worker_env, stdout=log, stderr=subprocess.STDOUT)
            cleanup.callback(stop, worker)
        single = service_copies(1, work / "services", f"{prefix}-one")
        many = service_copies(args.services, work / "services", f"{prefix}-many")
        cleanup.callback(decommission, single + many, settings)
        client = EndpointClient(settings, prefix)
        client.start()
        reports = work / "reports"
        reports.mkdir()
        wall_one, results_one = run_batch(env, single, reports)
        wall_many, results_many = run_batch(env, many, reports)
        client.halt.set()
        client.join(timeout=30)
    results = results_one + results_many
    outcomes = [release.report.outcome.value for release in results]
    overheads = [release.overhead_share for release in results]
    parts = [release.overhead_s() for release in results]
    switches = [stage.duration_s for release in results for stage in release.report.stages
                if stage.name == "promote"]
    slowest = sorted(((stage.duration_s, stage.name) for release in results_many
                      for stage in release.report.stages), reverse=True)[:5]
    ratio = wall_many / wall_one
    print(f"{args.services} copies of {SAMPLE.name}, {args.workers} process workers, Prefect "
          f"on PostgreSQL; {DEPLOYMENT} runs at most {limit} at once "
          f"(prefect.yaml: {deployment_limit()}); load average at the end "
          f"{os.getloadavg()[0]:.1f}; outcomes: {', '.join(sorted(set(outcomes)))} "
          f"({outcomes.count('released')}/{len(outcomes)} released)")
    print(f"wall time, 1 release: {wall_one:.1f} s")
    print(f"wall time, {args.services} releases at once: {wall_many:.1f} s")
    print(f"orchestration overhead per release: median {statistics.median(overheads):.1%}, "
          f"max {max(overheads):.1%} of its wall time")
    print("  outside stages, mean per release: "
          f"{statistics.fmean(p[0] for p in parts):.1f} s before the first, "
          f"{statistics.fmean(p[1] for p in parts):.1f} s between, "
          f"{statistics.fmean(p[2] for p in parts):.1f} s after the last; release wall time "
          f"mean {statistics.fmean(r.wall_s for r in results):.1f} s")
    spent: dict[str, float] = {}
    for release in results:
        for name, seconds in release.outside_by_task().items():
            spent[name] = spent.get(name, 0.0) + seconds / len(results)
    print("  outside stages by task, mean per release: " + ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in
        sorted(spent.items(), key=lambda item: -item[1])[:8]))
    print(f"  1 release: {sum(results_one[0].overhead_s()):.1f} s outside stages "
          f"({results_one[0].overhead_share:.1%}); stage means, 1 / {args.services}: "
          + ", ".join(f"{name} {one:.1f} / {many:.1f} s" for name, one, many in
                      stage_means(results_one, results_many)))
    print("  longest stages at N: " + ", ".join(f"{name} {d:.1f} s" for d, name in slowest))
    if switches:
        print(f"traffic switch (promote stage): p95 {p95(switches) * 1000:.0f} ms "
              f"over {len(switches)}")
    print(f"client of every endpoint: {client.answered} answered; "
          f"first failures: {client.failures[:3]}")
    print(f"ratio: {ratio:.2f}")
    print(f"failed requests: {len(client.failures)}")


if __name__ == "__main__":
    main()
