"""Baselines: every PerfReport kept per service, environment and revision (for trends); the
baseline of a release is the report of the last revision that was *released* there."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from runbook.models import PerfReport
from runbook.policy import Thresholds


class StoredReport(BaseModel):
    service: str
    environment: str
    revision: str
    recorded_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    report: PerfReport


class ReleasedMarker(BaseModel):
    revision: str
    released_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class MetricComparison(BaseModel):
    metric: str  # "avg_latency_s" | "p95_latency_s"
    current_s: float | None
    baseline_s: float | None
    ratio: float | None
    degraded: bool


class Degradation(BaseModel):
    """This release against the baseline; ``critical`` fails the perf stage."""

    baseline_revision: str | None
    limit_ratio: float
    comparisons: list[MetricComparison] = Field(default_factory=list)

    @property
    def critical(self) -> bool:
        return any(c.degraded for c in self.comparisons)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.metric} {c.current_s:.3f} s is {c.ratio:.2f}x the baseline's "
                f"{c.baseline_s:.3f} s (limit {self.limit_ratio}x)"
                for c in self.comparisons if c.degraded]


COMPARED_METRICS = ("avg_latency_s", "p95_latency_s")


def judge_degradation(
    current: PerfReport, baseline: PerfReport | None, baseline_revision: str | None,
    thresholds: Thresholds,
) -> Degradation:
    """Pure decision: p95 or average above ``perf_degradation_ratio`` times the baseline's,
    and more than ``perf_degradation_floor_s`` slower, is critical. No baseline: nothing to
    compare (the first release of a service sets it)."""
    result = Degradation(baseline_revision=baseline_revision,
                         limit_ratio=thresholds.perf_degradation_ratio)
    if baseline is None:
        return result
    for metric in COMPARED_METRICS:
        now, then = getattr(current, metric), getattr(baseline, metric)
        # Rounded before comparing: 0.6 / 0.4 is 1.5000000000000002 in floating point.
        ratio = round(now / then, 3) if now is not None and then else None
        degraded = (ratio is not None and now is not None and then is not None
                    and ratio > thresholds.perf_degradation_ratio
                    and now - then > thresholds.perf_degradation_floor_s)
        result.comparisons.append(MetricComparison(
            metric=metric, current_s=now, baseline_s=then,
            ratio=ratio, degraded=degraded,
        ))
    return result


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class BaselineStore:
    """Reports under ``<root>/<service>/<environment>/reports/``; the released revision in
    ``released.json`` next to them. Files, so any run (or a person) can read them back."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, service: str, environment: str) -> Path:
        return self.root / service / environment

    def save(self, service: str, environment: str, revision: str, report: PerfReport) -> Path:
        """Keep one test's report; returns its file."""
        stored = StoredReport(service=service, environment=environment, revision=revision,
                              report=report)
        stamp = stored.recorded_at.strftime("%Y%m%dT%H%M%S%fZ")
        path = self._dir(service, environment) / "reports" / f"{stamp}_{revision}.json"
        _write_atomically(path, stored.model_dump_json(indent=2))
        return path

    def history(self, service: str, environment: str) -> list[StoredReport]:
        """Every stored report of the service in the environment, oldest first."""
        folder = self._dir(service, environment) / "reports"
        paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return [StoredReport.model_validate_json(p.read_text()) for p in paths]

    def latest(self, service: str, environment: str, revision: str) -> StoredReport | None:
        matching = [s for s in self.history(service, environment) if s.revision == revision]
        return matching[-1] if matching else None

    def mark_released(self, service: str, environment: str, revision: str) -> bool:
        """Make ``revision``'s latest report the baseline; False if it has no report."""
        if self.latest(service, environment, revision) is None:
            return False
        _write_atomically(self._dir(service, environment) / "released.json",
                          ReleasedMarker(revision=revision).model_dump_json())
        return True

    def baseline(self, service: str, environment: str) -> StoredReport | None:
        """The last released revision's latest report, if any."""
        marker = self._dir(service, environment) / "released.json"
        if not marker.exists():
            return None
        revision = ReleasedMarker.model_validate_json(marker.read_text()).revision
        return self.latest(service, environment, revision)
