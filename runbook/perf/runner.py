"""Locust, headless, in processes of its own: one, or a master and workers (distributed).

gevent monkey-patches whatever process imports Locust; running it as a subprocess keeps that
out of the Prefect worker. Stats come back through files: ``--json-file`` (final, exact
counts) and ``--csv`` (``_stats_history.csv`` is rewritten every second: live progress).
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path

from pydantic import BaseModel, Field

from runbook.errors import RunbookError
from runbook.models import PerfReport
from runbook.perf.stats import (
    LoadProgress,
    read_failure_samples,
    read_locust_json,
    read_progress,
    report_from_locust_json,
)

POLL_INTERVAL_S = 1.0
TERMINATE_GRACE_S = 5.0
STDERR_TAIL_CHARS = 2000
# Locust's default for the master to wait for workers is forever; ours is bounded.
WORKERS_CONNECT_TIMEOUT_S = 30

ProgressCallback = Callable[[LoadProgress], None]


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


# Loaded next to the user's locustfile in the master: Locust flushes its live CSV only every
# 5 s, too coarse for a progress bar of a short test.
_FLUSH_EVERY_SECOND = (
    "import locust.stats\n\nlocust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1\n"
)


def _locust() -> list[str]:
    return [sys.executable, "-m", "locust"]


def _locustfiles(job: LocustJob) -> str:
    flush = job.workdir / "runbook_live_stats.py"
    flush.write_text(_FLUSH_EVERY_SECOND)
    return f"{job.locustfile},{flush}"


def master_command(job: LocustJob, master_port: int | None = None) -> list[str]:
    """The headless run (standalone, or the master when ``job.workers`` > 0)."""
    command = [
        *_locust(), "-f", _locustfiles(job), "--headless",
        "--host", job.host,
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
    return [*_locust(), "-f", str(job.locustfile), "--worker",
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
        master = subprocess.Popen(master_command(job, master_port), stdout=stdout, stderr=stderr)
        cleanup.callback(_stop, master)
        _wait(master, job, on_progress)
        if master.returncode != 0:
            raise LoadToolError(f"locust exited {master.returncode}: {_tail(stderr_path)}")
    if not job.json_path.exists():
        raise LoadToolError(f"locust wrote no stats to {job.json_path}: {_tail(stderr_path)}")
    tool = f"locust {version('locust')}" + (f", {job.workers} workers" if job.workers else "")
    return report_from_locust_json(
        read_locust_json(job.json_path), job.duration_s, users=job.users, tool=tool,
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
