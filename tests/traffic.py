"""A client that requests an endpoint back to back while a release (or a check) runs, as a
user's traffic would: the one measurement of "no request dropped" for the end-to-end tests
and the release benchmark (``benchmarks/release_bench.py`` imports it from here)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

ROUTER_ERRORS = frozenset({502, 503, 504})
"""What the router answers when no revision took the request: a dropped request."""


class ContinuousClient:
    """Requests ``endpoint + path`` in a thread until the ``with`` block ends, and sorts
    every answer.

    - ``dropped``: requests no revision answered (connection failures, the router's own
      502/503/504), each with its reason;
    - ``app_errors``: when the application itself answered 5xx (a bad release's deliberate
      500s), monotonic timestamps;
    - ``ok``: every other answer;
    - ``versions``: the ``version`` field of each ok JSON answer (the sample service's),
      ``None`` for an ok answer without one.
    """

    def __init__(self, endpoint: str, path: str = "/", pause_s: float = 0.01,
                 timeout_s: float = 10.0) -> None:
        self.url = endpoint + path
        self.pause_s = pause_s
        self.timeout_s = timeout_s
        self.ok = 0
        self.app_errors: list[float] = []
        self.dropped: list[str] = []
        self.versions: Counter[str | None] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ContinuousClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 5)

    @property
    def total(self) -> int:
        return self.ok + len(self.app_errors) + len(self.dropped)

    def error_span_s(self) -> float:
        """From the first application error the client saw to the last one."""
        return self.app_errors[-1] - self.app_errors[0] if self.app_errors else 0.0

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.url, timeout=self.timeout_s)
                except httpx.HTTPError as exc:
                    self.dropped.append(type(exc).__name__)
                    continue
                self._sort(response)
                self._stop.wait(self.pause_s)

    def _sort(self, response: httpx.Response) -> None:
        if response.status_code in ROUTER_ERRORS:
            self.dropped.append(f"HTTP {response.status_code}")
        elif response.status_code >= 500:
            self.app_errors.append(time.monotonic())
        else:
            self.ok += 1
            self.versions[_version(response)] += 1


def _version(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    version = body.get("version") if isinstance(body, dict) else None
    return None if version is None else str(version)
