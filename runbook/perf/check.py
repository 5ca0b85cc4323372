"""The performance check of a live revision (``runbook perf``, the nightly ``perf-check``
flow): the revision that serves an environment is started again in the preview slot and
load-tested there with the perf stage's gates. Nothing is promoted and the baseline is
only compared against, never replaced: the check watches for drift of what runs (slower
dependencies, more data, a changed node) without touching a release.

Pure: the report and what it decides and alerts; the flow does the I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from runbook import gates as gate_rules
from runbook.alerts.models import Alert, AlertKind, make_alert
from runbook.models import Gate, PerfReport


class PerfCheckReport(BaseModel):
    """The contract of ``runbook perf --report`` (JSON) and of the flow's result."""

    service: str
    environment: str
    target: str
    passed: bool = False
    """True only when the live revision was load-tested and every perf gate passed."""
    reason: str = ""
    """Why it did not pass (failed gates, nothing live, an error), empty when it passed."""
    revision: str | None = None
    """The live revision that was load-tested (it stayed live throughout)."""
    image: str | None = None
    """Its image, by digest."""
    preview_url: str | None = None
    """Where the load went: the preview slot, never the environment's endpoint."""
    baseline_revision: str | None = None
    """The released revision whose stored report the results were compared with."""
    standby: str | None = None
    """The rollback standby the check had to displace from the idle color and put back."""
    gates: list[Gate] = Field(default_factory=list)
    perf: PerfReport | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    flow_run_url: str | None = None

    def concluded(self, reason: str = "") -> PerfCheckReport:
        """The report with its verdict: passed when no gate failed and nothing else went
        wrong (``reason``); no gates at all is never a pass."""
        failed = gate_rules.failed(self.gates)
        if reason:
            passed = False
        elif not self.gates:
            passed, reason = False, "no perf gate was evaluated"
        elif failed:
            passed, reason = False, "gate failed: " + gate_rules.describe_failures(self.gates)
        else:
            passed = True
        return self.model_copy(update={"passed": passed, "reason": reason,
                                       "finished_at": datetime.now(UTC)})


def check_alert(report: PerfCheckReport) -> Alert | None:
    """The alert of a check that did not pass: failed gates are a performance
    degradation of what runs (critical), anything else a pipeline failure. None when it
    passed. The next release of the service resolves it (its alerts share the dedup key)."""
    if report.passed:
        return None
    gates_failed = bool(gate_rules.failed(report.gates))
    kind = AlertKind.PERFORMANCE_DEGRADATION if gates_failed else AlertKind.PIPELINE_FAILURE
    subject = f"live revision {report.revision}" if report.revision else "the live revision"
    summary = (f"perf check: {subject} fails its performance gates" if gates_failed
               else f"perf check of {subject} could not run")
    return make_alert(kind, report.service, report.environment, summary,
                      details=report.reason, link=report.flow_run_url)


def check_markdown(report: PerfCheckReport) -> str:
    """The check's verdict as markdown (the Prefect artifact); the load test's own table
    and chart are the perf stage's artifact."""
    verdict = "passed" if report.passed else "**failed**"
    lines = [f"# perf check: {report.service} {report.environment}: {verdict}", "",
             f"Live revision `{report.revision or '-'}` ({report.image or 'no image'}), "
             f"load-tested at {report.preview_url or '-'}; nothing promoted.", "",
             f"Baseline: `{report.baseline_revision or 'none yet'}` (compared, not replaced)."
             f" Standby kept: `{report.standby or 'none'}`.", ""]
    if report.reason:
        lines += [f"Reason: {report.reason}", ""]
    lines += ["| gate | passed | value | threshold |", "|---|---|---:|---:|"]
    lines += [f"| {g.name} | {'yes' if g.passed else '**no**'} | {g.value} | {g.threshold} |"
              for g in report.gates]
    return "\n".join(lines) + "\n"
