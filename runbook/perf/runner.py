"""Locust, headless, in processes of its own: one, or a master and workers (distributed).

gevent monkey-patches whatever process imports Locust; running it as a subprocess keeps that
out of the Prefect worker. Stats come back through files: ``--json-file`` (final, exact
counts) and ``--csv`` (``_stats_history.csv`` is rewritten every second: live progress).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from runbook.errors import RunbookError
from runbook.models import PerfReport
from runbook.perf.stats import (
    LoadProgress,
    read_failure_samples,
    read_locust_json,
    read_plugin_times,
    read_progress,
    report_from_locust_json,
)

POLL_INTERVAL_S = 1.0
TERMINATE_GRACE_S = 5.0
STDERR_TAIL_CHARS = 2000
# Locust's default for the master to wait for workers is forever; ours is bounded.
WORKERS_CONNECT_TIMEOUT_S = 30

ProgressCallback = Callable[[LoadProgress], None]


# Requests per second one Locust process (FastHttpUser) makes comfortably on one core here;
# demand above it is spread over worker processes. Measured with benchmarks/perf_bench.py.
ONE_PROCESS_RPS = 2000.0


def resolve_workers(workers: int | Literal["auto"], users: int, think_time_s: float,
                    required_rps: float | None, own_locustfile: bool,
                    cores: int | None = None) -> int:
    """Locust worker processes for a load test (0: one standalone process).

    ``auto`` means one worker per core when the requested load exceeds what one process
    makes: the throughput gate (``required_rps``) when set, else the generated locustfile's
    ceiling (``users / think_time_s``; a closed loop without think time wants all it can
    get). A service's own locustfile has no known ceiling: it gets workers only for
    ``required_rps``.
    """
    if workers != "auto":
        return workers
    cores = cores if cores is not None else (os.cpu_count() or 1)
    if required_rps is not None:
        demand = required_rps
    elif own_locustfile:
        demand = 0.0
    else:
        demand = users / think_time_s if think_time_s > 0 else math.inf
    if demand <= ONE_PROCESS_RPS or cores < 2 or users < 2:
        return 0
    return min(cores, users)


class LoadToolError(RunbookError):
    """The load generator itself failed (not a verdict on the release)."""


class LocustJob(BaseModel):
    """One headless Locust run."""

    host: str  # base URL the users request, e.g. the preview slot
    locustfile: Path
    users: int = Field(ge=1)
    spawn_rate: float = Field(gt=0)
    duration_s: float = Field(gt=0)
    workdir: Path  # stats, logs and the generated locustfile of this run
    workers: int = Field(default=0, ge=0)  # > 0: distributed (master + workers)
    shutdown_grace_s: float = Field(default=30.0, gt=0)
    stop_timeout_s: float = Field(default=10.0, gt=0)
    """Requests in flight when the run time ends may finish this long and are counted:
    without it a release slower than the test is short reports no request at all."""

    @property
    def stats_prefix(self) -> Path:
        return self.workdir / "locust"

    @property
    def json_path(self) -> Path:
        return self.workdir / "locust.json"

    @property
    def latency_path(self) -> Path:
        """Response times in microseconds per endpoint, written by the plugin."""
        return self.workdir / "latency_us.json"


# Loaded next to the user's locustfile in every Locust process: live stats every second and
# response times at microsecond resolution (see the module).
_PLUGIN_SOURCE = Path(__file__).with_name("locust_plugin.py")
PLUGIN_NAME = "runbook_plugin.py"


def _locust() -> list[str]:
    return [sys.executable, "-m", "locust"]


def _locustfiles(job: LocustJob) -> str:
    plugin = job.workdir / PLUGIN_NAME
    shutil.copyfile(_PLUGIN_SOURCE, plugin)
    return f"{job.locustfile},{plugin}"


def master_command(job: LocustJob, master_port: int | None = None) -> list[str]:
    """The headless run (standalone, or the master when ``job.workers`` > 0)."""
    command = [
        *_locust(), "-f", _locustfiles(job), "--headless",
        # FastHttpUser joins host and path as they are: "http://h/" + "/" is refused.
        "--host", job.host.rstrip("/"),
        "--users", str(job.users), "--spawn-rate", str(job.spawn_rate),
        "--run-time", f"{max(1, round(job.duration_s))}s",
        "--csv", str(job.stats_prefix), "--json-file", str(job.json_path.with_suffix("")),
        "--only-summary", "--exit-code-on-error", "0",
        "--stop-timeout", str(max(1, math.ceil(job.stop_timeout_s))),
        "--loglevel", "WARNING",
    ]
    if job.workers:
        command += ["--master", "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", str(master_port),
                    "--expect-workers", str(job.workers),
                    "--expect-workers-max-wait", str(WORKERS_CONNECT_TIMEOUT_S)]
    return command


def worker_command(job: LocustJob, master_port: int) -> list[str]:
    return [*_locust(), "-f", _locustfiles(job), "--worker",
            "--master-host", "127.0.0.1", "--master-port", str(master_port),
            "--loglevel", "WARNING"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TERMINATE_GRACE_S)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-STDERR_TAIL_CHARS:] if path.exists() else ""


def run_locust(job: LocustJob, on_progress: ProgressCallback | None = None) -> PerfReport:
    """Run Locust headless against ``job.host`` and read its stats into a PerfReport.

    Args:
        job: What to run, for how long, with how many users and workers.
        on_progress: Called about once a second with live totals.

    Returns:
        Totals and per-endpoint results; ``resources`` is left for the caller to fill.

    Raises:
        LoadToolError: Locust exited with an error, or did not stop within its deadline.
    """
    job.workdir.mkdir(parents=True, exist_ok=True)
    job.latency_path.unlink(missing_ok=True)
    master_port = _free_port() if job.workers else None
    with ExitStack() as cleanup:
        workers = []
        for index in range(job.workers):
            log = cleanup.enter_context((job.workdir / f"worker-{index}.log").open("wb"))
            workers.append(subprocess.Popen(worker_command(job, master_port or 0),
                                            stdout=log, stderr=subprocess.STDOUT))
        for worker in workers:
            cleanup.callback(_stop, worker)
        stderr_path = job.workdir / "locust.stderr"
        stderr = cleanup.enter_context(stderr_path.open("wb"))
        stdout = cleanup.enter_context((job.workdir / "locust.stdout").open("wb"))
        master = subprocess.Popen(master_command(job, master_port), stdout=stdout, stderr=stderr,
                                  env={**os.environ, "RUNBOOK_LATENCY_FILE": str(job.latency_path)})
        cleanup.callback(_stop, master)
        _wait(master, job, on_progress)
        if master.returncode != 0:
            raise LoadToolError(f"locust exited {master.returncode}: {_tail(stderr_path)}")
    if not job.json_path.exists():
        raise LoadToolError(f"locust wrote no stats to {job.json_path}: {_tail(stderr_path)}")
    tool = f"locust {version('locust')}" + (f", {job.workers} workers" if job.workers else "")
    times = read_plugin_times(job.latency_path)
    return report_from_locust_json(
        read_locust_json(job.json_path), job.duration_s, users=job.users, tool=tool,
        latency_us=times.latency_us, timed_at_connection=times.at_connection,
        failure_samples=read_failure_samples(Path(f"{job.stats_prefix}_failures.csv")),
    )


def _wait(master: subprocess.Popen[bytes], job: LocustJob,
          on_progress: ProgressCallback | None) -> None:
    started = time.monotonic()
    deadline = started + job.duration_s + job.stop_timeout_s + job.shutdown_grace_s
    if job.workers:
        deadline += WORKERS_CONNECT_TIMEOUT_S
    history = Path(f"{job.stats_prefix}_stats_history.csv")
    while master.poll() is None:
        if time.monotonic() > deadline:
            _stop(master)
            raise LoadToolError(
                f"locust did not finish within {deadline - started:.0f} s; stopped it"
            )
        if on_progress is not None:
            on_progress(read_progress(history, time.monotonic() - started, job.duration_s))
        try:
            master.wait(timeout=POLL_INTERVAL_S)
        except subprocess.TimeoutExpired:
            continue
    if on_progress is not None:
        final = read_progress(history, job.duration_s, job.duration_s)
        on_progress(final)
