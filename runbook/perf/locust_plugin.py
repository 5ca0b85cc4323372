"""Loaded by Locust next to the locustfile (``-f locustfile.py,runbook_plugin.py``); never
imported by runbook itself (importing Locust monkey-patches the importing process).

The runner copies this file into the run directory, so a run there reproduces without
runbook installed. It does three things Locust does not:

- brings gevent's clock up to date before the test starts. The event loop caches its
  time, and until the loop first runs that is the hub's creation at Locust's import;
  ``--run-time`` is a ``spawn_later`` from that stale time, so a start that took seconds
  (imports on a busy machine) cut the load test short by as much: a 4 s test made no
  request at all at load average 20;

- flushes the live ``_stats_history.csv`` every second (Locust's default, 5 s, is too coarse
  for the progress bar of a short test);
- keeps every response time at microsecond resolution (three significant digits), per
  endpoint, because Locust's own histogram rounds to whole milliseconds, which is all there
  is to tell apart on a fast service. Workers send theirs with each stats report, the master
  (or the standalone process) merges them and writes them to ``RUNBOOK_LATENCY_FILE``.
"""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter
from typing import Any

import gevent
import locust.stats
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1

REPORT_KEY = "runbook_latency_us"
OUTPUT = os.environ.get("RUNBOOK_LATENCY_FILE")
SIGNIFICANT_DIGITS = 3

# endpoint ("METHOD name") -> {microseconds (3 significant digits): count}
_histograms: dict[str, Counter[int]] = {}


def bucket_us(response_time_ms: float) -> int:
    """Microseconds rounded to three significant digits (error below 0.5 %)."""
    micros = max(0, round(response_time_ms * 1000))
    digits = len(str(micros))
    if digits <= SIGNIFICANT_DIGITS:
        return micros
    scale = 10 ** (digits - SIGNIFICANT_DIGITS)
    return round(micros / scale) * scale


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float | None, **_: Any) -> None:
    if response_time is None:
        return
    _histograms.setdefault(f"{request_type} {name}", Counter())[bucket_us(response_time)] += 1


@events.report_to_master.add_listener
def _send(client_id: str, data: dict[str, Any]) -> None:
    data[REPORT_KEY] = {name: dict(histogram) for name, histogram in _histograms.items()}
    _histograms.clear()


@events.worker_report.add_listener
def _merge(client_id: str, data: dict[str, Any]) -> None:
    for name, histogram in data.get(REPORT_KEY, {}).items():
        merged = _histograms.setdefault(name, Counter())
        merged.update({int(micros): int(count) for micros, count in histogram.items()})
    _write()


def _write() -> None:
    if OUTPUT is None:
        return
    temporary = f"{OUTPUT}.tmp"
    with open(temporary, "w") as handle:
        json.dump({name: dict(h) for name, h in _histograms.items()}, handle)
    os.replace(temporary, OUTPUT)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    # Fired just before the headless run schedules --run-time (see the module). Not in a
    # worker: there it kept the spawned users from starting.
    gevent.get_hub().loop.update_now()
    # The master's last worker reports arrive while Locust quits, after the quitting event:
    # writing on every report, and once more at exit, keeps the file complete.
    events.quitting.add_listener(lambda **_kw: _write())
    atexit.register(_write)
