"""Building the run report as the pipeline goes, and rendering it for people."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from runbook.models import Gate, Outcome, RunReport, StageRecord, StageStatus
from runbook.names import Stage


class ReportBuilder:
    """Collects stages and gates; each stage is timed and marked failed if it raises."""

    def __init__(self, report: RunReport) -> None:
        self.report = report

    @contextlib.contextmanager
    def stage(self, name: Stage) -> Iterator[StageRecord]:
        record = StageRecord(
            name=name, status=StageStatus.PASSED, started_at=datetime.now(UTC), duration_s=0
        )
        started = time.perf_counter()
        try:
            yield record
        except BaseException as exc:
            record.status = StageStatus.FAILED
            record.detail = record.detail or _one_line(str(exc)) or type(exc).__name__
            raise
        finally:
            record.duration_s = round(time.perf_counter() - started, 3)
            self.report.stages.append(record)

    def skip(self, name: Stage, why: str) -> None:
        self.report.stages.append(
            StageRecord(
                name=name, status=StageStatus.SKIPPED, started_at=datetime.now(UTC),
                duration_s=0, detail=why,
            )
        )

    def gates(self, gates: list[Gate]) -> list[Gate]:
        self.report.gates.extend(gates)
        return gates

    def finish(self, outcome: Outcome, reason: str = "") -> RunReport:
        self.report.outcome = outcome
        self.report.reason = reason
        self.report.finished_at = datetime.now(UTC)
        return self.report


def write_report(report: RunReport, path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(target.suffix + ".tmp")
    temporary.write_text(report.model_dump_json(indent=2) + "\n")
    temporary.replace(target)


def to_markdown(report: RunReport) -> str:
    """The report as a Prefect markdown artifact: outcome first, then stages and gates."""
    lines = [
        f"# {report.service} → {report.environment}: **{report.outcome.value}**",
        "",
        f"- image: `{report.image}`",
        f"- revision: `{report.revision}` (previous: `{report.previous}`)",
        f"- candidate: `{report.candidate}`",
        f"- endpoint: {report.endpoint}",
        f"- strategy / target: {report.strategy} / {report.target}",
    ]
    if report.reason:
        lines.append(f"- reason: {report.reason}")
    if report.guard_until is not None:
        lines.append(f"- guarded until: {report.guard_until.isoformat()}")
    lines += ["", "| stage | status | duration (s) | detail |", "|---|---|---|---|"]
    lines += [
        f"| {s.name} | {s.status.value} | {s.duration_s:.1f} | {_cell(s.detail)} |"
        for s in report.stages
    ]
    lines += ["", "| gate | passed | value | threshold |", "|---|---|---|---|"]
    lines += [
        f"| {g.name} | {'yes' if g.passed else '**no**'} | {g.value} | {g.threshold} |"
        for g in report.gates
    ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")[:300]


def _one_line(text: str) -> str:
    return " ".join(text.split())
