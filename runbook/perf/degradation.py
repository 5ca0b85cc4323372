"""Is this release slower than its baseline? (pure): the perf stage's degradation decision.

The baseline itself (which report is the baseline, where it is kept) is
:mod:`runbook.perf.baseline`'s; this module only compares two reports.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from runbook.models import PerfReport
from runbook.policy import Thresholds


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
