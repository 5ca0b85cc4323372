"""Locust's output, read: the final ``--json-file`` stats and the live ``_stats_history.csv``."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from runbook.models import EndpointStats, PerfReport

PERCENTILES = {"p50_latency_s": 0.50, "p90_latency_s": 0.90, "p95_latency_s": 0.95,
               "p99_latency_s": 0.99}


class LoadProgress(BaseModel):
    """A live reading of a running load test."""

    elapsed_s: float
    duration_s: float
    users: int = 0
    requests: int = 0
    failures: int = 0
    current_rps: float = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.elapsed_s / self.duration_s) if self.duration_s else 1.0


def percentile_ms(histogram: Counter[int], total: int, share: float) -> float | None:
    """Locust's own percentile rule over a histogram of rounded response times (Locust's
    milliseconds, or the plugin's microseconds: the result is in the histogram's unit):
    the smallest bucket at or below which ``share`` of the requests fall."""
    if total == 0:
        return None
    allowed_above = total - int(total * share)
    seen = 0
    for response_time in sorted(histogram, reverse=True):
        seen += histogram[response_time]
        if seen >= allowed_above:
            return float(response_time)
    return float(min(histogram))


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _percentiles_s(entries: list[dict[str, Any]],
                   fine_us: Counter[int] | None) -> dict[str, float | None]:
    """Percentiles from the microsecond histogram when the plugin wrote one, else from
    Locust's own (whole milliseconds below 100 ms, coarser above)."""
    if fine_us:
        total = sum(fine_us.values())
        return {field: None if (us := percentile_ms(fine_us, total, share)) is None
                else us / 1e6 for field, share in PERCENTILES.items()}
    histogram: Counter[int] = Counter()
    for entry in entries:
        histogram.update({int(float(k)): int(v) for k, v in entry["response_times"].items()})
    timed = sum(histogram.values())
    return {field: _seconds(percentile_ms(histogram, timed, share))
            for field, share in PERCENTILES.items()}


def _endpoint(name: str, entries: list[dict[str, Any]], duration_s: float,
              fine_us: Counter[int] | None = None) -> EndpointStats:
    requests = sum(int(e["num_requests"]) for e in entries)
    failures = sum(int(e["num_failures"]) for e in entries)
    total_ms = sum(float(e["total_response_time"]) for e in entries)
    timed = sum(int(e["num_requests"]) - int(e.get("num_none_requests") or 0) for e in entries)
    maxima = [float(e["max_response_time"]) for e in entries if e["num_requests"]]
    avg_s = _seconds(total_ms / timed) if timed else None
    max_s = _seconds(max(maxima)) if maxima else None
    if fine_us:
        # The same times as the percentiles (the plugin's: at the connection where it could
        # time them), so the average and the maximum read with them.
        avg_s = sum(us * n for us, n in fine_us.items()) / sum(fine_us.values()) / 1e6
        max_s = max(fine_us) / 1e6
    return EndpointStats(
        name=name,
        requests=requests,
        failures=failures,
        duration_s=duration_s,
        avg_latency_s=avg_s,
        max_latency_s=max_s,
        **_percentiles_s(entries, fine_us),
    )


def measured_duration_s(entries: list[dict[str, Any]], fallback_s: float) -> float:
    """First request to last response across all endpoints; ``fallback_s`` if none ran."""
    starts = [float(e["start_time"]) for e in entries if e["num_requests"]]
    ends = [float(e["last_request_timestamp"]) for e in entries if e["num_requests"]]
    if not starts:
        return fallback_s
    return max(ends) - min(starts) or fallback_s


def report_from_locust_json(
    entries: list[dict[str, Any]], fallback_duration_s: float,
    latency_us: dict[str, Counter[int]] | None = None, **extra: Any,
) -> PerfReport:
    """A :class:`PerfReport` from Locust's ``--json-file`` content (one entry per endpoint).

    Args:
        entries: The parsed JSON list Locust writes at the end of the run.
        fallback_duration_s: Duration used when no request completed.
        latency_us: Response times in microseconds per endpoint ("METHOD name"), as the
            runbook plugin records them; percentiles come from them when present.
        **extra: Further PerfReport fields (users, tool, failure_samples, resources).
    """
    duration_s = measured_duration_s(entries, fallback_duration_s)
    fine = latency_us or {}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_name.setdefault(f"{entry['method']} {entry['name']}", []).append(entry)
    endpoints = [_endpoint(name, group, duration_s, fine.get(name))
                 for name, group in sorted(by_name.items())]
    overall: Counter[int] = Counter()
    for name in by_name:
        overall.update(fine.get(name, Counter()))
    complete = all(name in fine for name in by_name)
    total = _endpoint("total", entries, duration_s, overall if complete else None)
    return PerfReport(**total.model_dump(exclude={"error_rate", "rps"}), endpoints=endpoints,
                      **extra)


def read_locust_json(path: Path) -> list[dict[str, Any]]:
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of Locust stats entries")
    return entries


@dataclass(frozen=True)
class PluginTimes:
    """What the runbook plugin recorded (``runbook/perf/locust_plugin.py``)."""

    latency_us: dict[str, Counter[int]] = field(default_factory=dict)
    """Response times in microseconds per endpoint ("METHOD name")."""
    at_connection: int = 0
    """How many of them were timed at the connection; the rest are Locust's own times."""


def read_latency_us(path: Path) -> dict[str, Counter[int]]:
    """The plugin's per-endpoint microsecond histograms; empty when it wrote none."""
    return read_plugin_times(path).latency_us


def read_plugin_times(path: Path) -> PluginTimes:
    """The plugin's file; empty when it wrote none."""
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return PluginTimes()
    return PluginTimes(
        latency_us={name: Counter({int(us): int(n) for us, n in histogram.items()})
                    for name, histogram in raw.get("latency_us", {}).items()},
        at_connection=sum(int(n) for n in raw.get("at_connection", {}).values()),
    )


def read_failure_samples(path: Path, limit: int = 5) -> list[str]:
    """The most frequent errors from Locust's ``_failures.csv``, as 'N x METHOD NAME: error'."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: -int(r.get("Occurrences") or 0))
    return [f"{r['Occurrences']} x {r['Method']} {r['Name']}: {r['Error']}" for r in rows[:limit]]


def read_progress(history_csv: Path, elapsed_s: float, duration_s: float) -> LoadProgress:
    """The latest aggregated row of ``_stats_history.csv`` (written every second)."""
    progress = LoadProgress(elapsed_s=elapsed_s, duration_s=duration_s)
    try:
        lines = history_csv.read_text().splitlines()
    except FileNotFoundError:
        return progress
    rows = [r for r in csv.DictReader(lines) if r.get("Name") == "Aggregated"]
    if not rows:
        return progress
    last = rows[-1]
    return progress.model_copy(update={
        "users": int(last["User Count"] or 0),
        "requests": int(last["Total Request Count"] or 0),
        "failures": int(last["Total Failure Count"] or 0),
        "current_rps": float(last["Requests/s"] or 0.0),
    })
