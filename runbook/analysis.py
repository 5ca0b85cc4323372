"""Deciding whether a live release is healthy: pure functions over measurements.

Shaped like an Argo Rollouts analysis run: measurements taken at an interval, each one
Successful, Failed, Inconclusive (not enough data) or Error (the metric source failed), and
limits on how many of each the run tolerates. Missing data is never a pass: a run without a
single successful measurement is not Successful.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from runbook.policy import AnalysisSettings, Thresholds


class Phase(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class Measurement(BaseModel):
    """What was observed of the new revision at one point of the analysis window."""

    elapsed_s: float
    requests: float | None = None
    """Requests the router counted for the revision in the measured range."""
    error_rate: float | None = None
    avg_latency_s: float | None = None
    client_avg_latency_s: float | None = None
    """Average latency of the verification traffic since the previous measurement: a
    windowed view that reacts faster than the router's running average."""
    health_ok: bool | None = None
    health_detail: str = ""
    source_error: str | None = None
    """Set when Prometheus could not be queried: the measurement is an Error."""


    def summary(self) -> str:
        """One log line: what was measured, with units."""
        def fmt(value: float | None, pattern: str) -> str:
            return "n/a" if value is None else pattern.format(value)

        return (
            f"t={self.elapsed_s:.0f}s requests={fmt(self.requests, '{:.0f}')} "
            f"errors={fmt(self.error_rate, '{:.1%}')} avg={fmt(self.avg_latency_s, '{:.3f}s')} "
            f"client_avg={fmt(self.client_avg_latency_s, '{:.3f}s')} "
            f"health={'n/a' if self.health_ok is None else ('ok' if self.health_ok else 'FAIL')}"
        )


class MeasurementResult(BaseModel):
    measurement: Measurement
    phase: Phase
    reasons: list[str] = Field(default_factory=list)


class Verdict(BaseModel):
    phase: Phase
    reasons: list[str]
    results: list[MeasurementResult]

    @property
    def keep(self) -> bool:
        return self.phase is Phase.SUCCESSFUL


def judge(m: Measurement, thresholds: Thresholds, settings: AnalysisSettings) -> MeasurementResult:
    """Classify one measurement. Failure reasons win over missing data."""
    failures = _failures(m, thresholds)
    if failures:
        return MeasurementResult(measurement=m, phase=Phase.FAILED, reasons=failures)
    if m.source_error is not None:
        return MeasurementResult(
            measurement=m, phase=Phase.ERROR, reasons=[f"metrics unavailable: {m.source_error}"]
        )
    missing = _missing(m, settings)
    if missing:
        return MeasurementResult(measurement=m, phase=Phase.INCONCLUSIVE, reasons=missing)
    return MeasurementResult(measurement=m, phase=Phase.SUCCESSFUL)


def _failures(m: Measurement, thresholds: Thresholds) -> list[str]:
    reasons = []
    if m.health_ok is False:
        reasons.append(f"health check failed: {m.health_detail}".rstrip(": "))
    if m.error_rate is not None and m.error_rate > thresholds.rollback_error_rate:
        reasons.append(
            f"error rate {m.error_rate:.1%} > {thresholds.rollback_error_rate:.1%}"
        )
    if m.avg_latency_s is not None and m.avg_latency_s > thresholds.rollback_avg_latency_s:
        reasons.append(
            f"average response time {m.avg_latency_s:.2f} s > "
            f"{thresholds.rollback_avg_latency_s:.2f} s"
        )
    client = m.client_avg_latency_s
    if client is not None and client > thresholds.rollback_avg_latency_s:
        reasons.append(
            f"verification traffic average response time {client:.2f} s > "
            f"{thresholds.rollback_avg_latency_s:.2f} s"
        )
    return reasons


def _missing(m: Measurement, settings: AnalysisSettings) -> list[str]:
    reasons = []
    if m.health_ok is None:
        reasons.append("no health check result")
    if m.requests is None or m.requests < settings.min_requests:
        got = "no" if m.requests is None else f"{m.requests:.0f}"
        reasons.append(f"{got} requests measured (need {settings.min_requests})")
    elif m.error_rate is None:
        reasons.append("no error-rate data")
    if m.avg_latency_s is None:
        reasons.append("no latency data")
    return reasons


def conclude(results: list[MeasurementResult], settings: AnalysisSettings) -> Verdict:
    """The verdict of an analysis run so far (or at its end)."""
    failed = [r for r in results if r.phase is Phase.FAILED]
    inconclusive = [r for r in results if r.phase is Phase.INCONCLUSIVE]
    if len(failed) > settings.failure_limit:
        return Verdict(phase=Phase.FAILED, reasons=failed[-1].reasons, results=results)
    if _consecutive_errors(results) > settings.consecutive_error_limit:
        return Verdict(phase=Phase.ERROR, reasons=results[-1].reasons, results=results)
    if len(inconclusive) > settings.inconclusive_limit:
        return Verdict(phase=Phase.INCONCLUSIVE, reasons=inconclusive[-1].reasons, results=results)
    if not any(r.phase is Phase.SUCCESSFUL for r in results):
        return Verdict(
            phase=Phase.INCONCLUSIVE,
            reasons=["no successful measurement: missing data is never a pass"],
            results=results,
        )
    return Verdict(phase=Phase.SUCCESSFUL, reasons=[], results=results)


def is_decided(results: list[MeasurementResult], settings: AnalysisSettings) -> bool:
    """True once the run can no longer end Successful, so rollback need not wait."""
    if conclude(results, settings).phase in (Phase.FAILED, Phase.ERROR):
        return True
    inconclusive = sum(r.phase is Phase.INCONCLUSIVE for r in results)
    return inconclusive > settings.inconclusive_limit


def _consecutive_errors(results: list[MeasurementResult]) -> int:
    count = 0
    for result in reversed(results):
        if result.phase is not Phase.ERROR:
            break
        count += 1
    return count
