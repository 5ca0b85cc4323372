"""Deciding whether a live release is healthy: pure functions over check measurements.

Shaped like an Argo Rollouts analysis run: every declared check (and every standard one) is
measured at its interval, each measurement Successful, Failed, Inconclusive (no data, or
neither condition met) or Error (the source failed), with per-check limits on how many of
each the run tolerates. Two rules go beyond Argo:

- missing data is never a pass: a check without a successful measurement is not Successful;
- a check must end on a successful measurement: trailing errors or inconclusive (or
  tolerated failed) measurements leave it *pending*, and at the end of the analysis a
  pending check is not a pass (one success followed by two Prometheus errors is not a pass).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from runbook.checks import conditions
from runbook.checks.model import MetricCheck, NoData
from runbook.checks.standard import AVG_LATENCY, ERROR_RATE, TRAFFIC_LATENCY
from runbook.models import Gate
from runbook.names import VERIFY_CHECK_ALERT, verify_gate


class Phase(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


Value = float | int | str | None


class Observation(BaseModel):
    """What a provider returned for one check at one moment; no judgement yet."""

    query: str
    """The rendered query, URL or command, as it was sent."""
    result: Value = None
    """The value conditions see as ``result``; None is no data."""
    values: dict[str, Value] = Field(default_factory=dict)
    """The provider's other names (``status``, ``exit_code``, ``stdout``)."""
    error: str | None = None
    """Set when the source could not be read: the measurement is an Error."""


class CheckResult(BaseModel):
    """One measurement of one check: the record the report and the artifact show."""

    check: str
    elapsed_s: float
    query: str
    value: Value
    condition: str
    phase: Phase
    reason: str = ""
    measured_at: datetime | None = None
    """When the query was sent (UTC): ``elapsed_s`` counts from the analysis' start, which
    is not the verify stage's start."""

    def summary(self) -> str:
        return (f"t={self.elapsed_s:.0f}s {self.check}={format_value(self.check, self.value)}"
                f" -> {self.phase.value}{': ' + self.reason if self.reason else ''}")


class CheckVerdict(BaseModel):
    check: str
    phase: Phase
    decided: bool
    """True once the check's limits are exceeded: it can no longer end Successful."""
    reason: str = ""
    measurements: int = 0
    value: Value = None
    """The value that decided it: the last failed one for a failed check, else the last."""
    condition: str = ""


class Verdict(BaseModel):
    phase: Phase
    reasons: list[str]
    results: list[CheckResult]
    checks: list[CheckVerdict] = Field(default_factory=list)
    series_wait_s: float | None = None
    """Seconds the analysis waited for Prometheus to scrape the revision before its first
    measurement; None when there was nothing to wait for."""
    series_missing: bool = False
    """The revision's request series was still not scraped when the wait ended."""

    @property
    def keep(self) -> bool:
        return self.phase is Phase.SUCCESSFUL

    @property
    def decided(self) -> bool:
        """A check exceeded its limits: the revision failed, whatever comes next (the
        guard rolls back only on this; a check merely pending when it expires does not)."""
        return any(v.decided for v in self.checks)


def judge(check: MetricCheck, observation: Observation, elapsed_s: float,
          measured_at: datetime | None = None) -> CheckResult:
    """Classify one measurement by the check's conditions (Argo's rules)."""
    def result(phase: Phase, reason: str = "") -> CheckResult:
        return CheckResult(check=check.name, elapsed_s=round(elapsed_s, 1),
                           query=observation.query, value=observation.result,
                           condition=check.condition_text(), phase=phase, reason=reason,
                           measured_at=measured_at)

    if observation.error is not None:
        return result(Phase.ERROR, f"source error: {observation.error}")
    if observation.result is None:
        phase = Phase.FAILED if check.no_data is NoData.FAILED else Phase.INCONCLUSIVE
        return result(phase, "no data (missing data is never a pass)")
    names = {"result": observation.result, **observation.values}
    shown = format_value(check.name, observation.result)
    try:
        failing = (check.failure_condition is not None
                   and conditions.evaluate(check.failure_condition, names))
        succeeding = (check.success_condition is not None
                      and conditions.evaluate(check.success_condition, names))
    except conditions.ConditionError as exc:
        return result(Phase.ERROR, f"condition not decidable: {exc}")
    if failing:
        return result(Phase.FAILED, f"{shown} meets failure condition {check.failure_condition}")
    if check.success_condition is None or succeeding:
        return result(Phase.SUCCESSFUL)
    if check.failure_condition is not None:
        return result(Phase.INCONCLUSIVE, f"{shown} meets neither condition")
    return result(Phase.FAILED, f"{shown} does not meet {check.success_condition}")


def conclude_check(check: MetricCheck, results: list[CheckResult]) -> CheckVerdict:
    """The state of one check: decided by its limits, or pending until it ends on success."""
    mine = [r for r in results if r.check == check.name]
    failed = [r for r in mine if r.phase is Phase.FAILED]
    inconclusive = [r for r in mine if r.phase is Phase.INCONCLUSIVE]
    last = mine[-1] if mine else None

    def verdict(phase: Phase, decided: bool, reason: str, deciding: CheckResult | None
                ) -> CheckVerdict:
        return CheckVerdict(check=check.name, phase=phase, decided=decided, reason=reason,
                            measurements=len(mine), condition=check.condition_text(),
                            value=deciding.value if deciding else None)

    if len(failed) > check.failure_limit:
        return verdict(Phase.FAILED, True, failed[-1].reason, failed[-1])
    if last is not None and _consecutive_errors(mine) > check.consecutive_error_limit:
        return verdict(Phase.ERROR, True, last.reason, last)
    if len(inconclusive) > check.inconclusive_limit:
        return verdict(Phase.INCONCLUSIVE, True, inconclusive[-1].reason, inconclusive[-1])
    if last is None:
        return verdict(Phase.INCONCLUSIVE, False, "not measured: missing data is never a pass",
                       None)
    if last.phase is Phase.SUCCESSFUL:
        return verdict(Phase.SUCCESSFUL, False, "", last)
    pending = Phase.ERROR if last.phase is Phase.ERROR else Phase.INCONCLUSIVE
    return verdict(pending, False, f"ends on a {last.phase.value} measurement ({last.reason}): "
                   "a check must end on a successful one", last)


def conclude(checks: list[MetricCheck], results: list[CheckResult]) -> Verdict:
    """The verdict of an analysis run so far (or at its end): the worst check decides."""
    verdicts = [conclude_check(check, results) for check in checks]
    phase = Phase.SUCCESSFUL
    for candidate in (Phase.INCONCLUSIVE, Phase.ERROR, Phase.FAILED):
        if any(v.phase is candidate for v in verdicts):
            phase = candidate
    if not checks:
        phase = Phase.INCONCLUSIVE
    reasons = [f"{v.check}: {v.reason}" for v in verdicts if v.phase is phase
               and phase is not Phase.SUCCESSFUL]
    if not checks:
        reasons = ["no checks: missing data is never a pass"]
    return Verdict(phase=phase, reasons=reasons,
        results=results, checks=verdicts)


def is_decided(checks: list[MetricCheck], results: list[CheckResult]) -> bool:
    """True once the run can no longer end Successful, so rollback need not wait."""
    return any(conclude_check(check, results).decided for check in checks)


def pending(checks: list[MetricCheck], results: list[CheckResult]) -> list[MetricCheck]:
    """Checks not decided whose last measurement is not a success: at the end of the window
    they are measured again (bounded by :func:`extra_rounds`) rather than passed."""
    return [check for check in checks
            if (v := conclude_check(check, results)).phase is not Phase.SUCCESSFUL
            and not v.decided]


def extra_rounds(checks: list[MetricCheck]) -> int:
    """How many measurements past the window a pending check may take: enough for its
    limits to decide it either way, and no more (alternating error/success must end)."""
    return max((c.failure_limit + c.inconclusive_limit + c.consecutive_error_limit + 1
                for c in checks), default=0)


def verify_gates(verdict: Verdict) -> list[Gate]:
    """One gate per check for the run report: ``verify_error_rate 30.0 % (result > 0.05)``."""
    return [
        Gate(name=verify_gate(v.check), alert_kind=VERIFY_CHECK_ALERT,
             passed=v.phase is Phase.SUCCESSFUL,
             value=format_value(v.check, v.value), threshold=v.condition,
             detail=v.reason or f"{v.measurements} measurement(s)")
        for v in verdict.checks
    ]


def format_value(check: str, value: Value) -> str:
    """A value with the unit of the standard checks; declared checks' values as they are."""
    if value is None:
        return "no data"
    if isinstance(value, str):
        return value
    if check == ERROR_RATE:
        return f"{value:.1%}".replace("%", " %")
    if check in (AVG_LATENCY, TRAFFIC_LATENCY):
        return f"{value:.3f} s"
    return f"{value:g}"


def _consecutive_errors(results: list[CheckResult]) -> int:
    count = 0
    for result in reversed(results):
        if result.phase is not Phase.ERROR:
            break
        count += 1
    return count
