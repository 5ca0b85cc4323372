"""HTTP load from this process: the perf stage's short load test and verification traffic.

Threads with one keep-alive client each; every request is timed and counted. This is the
walking skeleton's load generator; the full perf stage (Locust, baselines) replaces it for
the perf gate but verification traffic stays this small.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable

import httpx

from runbook.models import PerfReport


class LoadResult:
    """Thread-safe tally of request outcomes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latencies: list[float] = []
        self.finished_at: list[float] = []
        self.failures = 0
        self.failure_samples: list[str] = []

    def record(self, latency_s: float, failure: str | None) -> None:
        with self._lock:
            self.latencies.append(latency_s)
            self.finished_at.append(time.monotonic())
            if failure is not None:
                self.failures += 1
                if len(self.failure_samples) < 5:
                    self.failure_samples.append(failure)

    def average_since(self, since: float) -> float | None:
        """Average latency of the requests that finished after monotonic time ``since``."""
        with self._lock:
            recent = [lat for lat, at in zip(self.latencies, self.finished_at, strict=True)
                      if at >= since]
        return statistics.fmean(recent) if recent else None

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def report(self, duration_s: float) -> PerfReport:
        with self._lock:
            latencies = sorted(self.latencies)
        return PerfReport(
            requests=len(latencies),
            failures=self.failures,
            duration_s=duration_s,
            avg_latency_s=statistics.fmean(latencies) if latencies else None,
            p95_latency_s=latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
            max_latency_s=latencies[-1] if latencies else None,
        )


def _request(client: httpx.Client, url: str, timeout_s: float, result: LoadResult) -> None:
    started = time.perf_counter()
    failure = None
    try:
        response = client.get(url, timeout=timeout_s)
        if response.status_code >= 500:
            failure = f"HTTP {response.status_code} from {url}"
    except httpx.HTTPError as exc:
        failure = f"{type(exc).__name__} from {url}"
    result.record(time.perf_counter() - started, failure)


def run_load(
    base_url: str,
    paths: list[str],
    users: int,
    duration_s: float,
    timeout_s: float,
    on_progress: Callable[[float, LoadResult], None] | None = None,
) -> PerfReport:
    """Closed-loop load: ``users`` clients request ``paths`` in turn for ``duration_s``."""
    result = LoadResult()
    deadline = time.monotonic() + duration_s

    def user(offset: int) -> None:
        urls = itertools.cycle(base_url + p for p in paths[offset % len(paths):] + paths)
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                _request(client, next(urls), timeout_s, result)

    started = time.monotonic()
    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if on_progress is not None:
            on_progress(min(1.0, (time.monotonic() - started) / duration_s), result)
        for thread in threads:
            thread.join(timeout=1.0)
    return result.report(time.monotonic() - started)


class TrafficDriver:
    """Steady open-loop traffic at a fixed rate until stopped (verification traffic)."""

    def __init__(self, base_url: str, paths: list[str], rps: float, timeout_s: float) -> None:
        self.base_url = base_url
        self.paths = paths
        self.rps = rps
        self.timeout_s = timeout_s
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TrafficDriver:
        if self.rps > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout_s + 1)

    def _run(self) -> None:
        interval = 1.0 / self.rps
        urls = itertools.cycle(self.base_url + p for p in self.paths)
        next_at = time.monotonic()
        with httpx.Client() as client:
            while not self._stop.is_set():
                _request(client, next(urls), self.timeout_s, self.result)
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
