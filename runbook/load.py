"""Verification traffic: steady HTTP requests at the endpoint from this process, each one
timed and counted. (The perf stage's load comes from Locust, runbook/perf/.)"""

from __future__ import annotations

import itertools
import statistics
import threading
import time

import httpx


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


class TrafficDriver:
    """Steady open-loop traffic at a fixed rate until stopped (verification traffic)."""

    def __init__(self, base_url: str, paths: list[str], rps: float, timeout_s: float) -> None:
        self.base_url = base_url
        self.paths = paths
        self.rps = rps
        self.timeout_s = timeout_s
        self.result = LoadResult()
        self._in_flight_since: float | None = None
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
                self._in_flight_since = time.monotonic()
                _request(client, next(urls), self.timeout_s, self.result)
                self._in_flight_since = None
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def latency_since(self, since: float) -> float | None:
        """Average latency of the requests finished after monotonic time ``since``; with
        none finished, how long the one in flight has taken so far (a lower bound of its
        latency: a hung release must not look like a quiet one)."""
        average = self.result.average_since(since)
        started = self._in_flight_since
        if average is None and started is not None:
            return time.monotonic() - started
        return average
