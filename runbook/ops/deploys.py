"""What a deploy is and when it succeeded: the one definition daily health, DORA and the
Pushgateway run metrics (``deployments/prometheus/rules/pipeline.yml``) share. Pure.

A *deploy* is the part of a pipeline run from the candidate's first contact with the target
to the end of verification (``runbook.names.DEPLOY_STAGES``: preview or rollout, perf,
promote, verify, retire, rollback; whatever the strategy). It **passed** when the release
ended live and verified (``released``), **failed** when it was rolled back or the run broke
after the preview started (``rolled_back``, ``failed``), and is **blocked** when a gate
stopped it before traffic moved: a gate saying no is the pipeline working, so a blocked run
counts neither as a success nor as a failure (not in the deploy success rate, not a change
in the change failure rate). A run that never reached the preview is no deploy at all.

Each run's record travels with its Prefect run: the run report artifact carries it as a
JSON comment (:func:`embed_record`), so the history is Prefect's own, with no second store.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ValidationError

from runbook.models import Outcome, RunReport
from runbook.names import DEPLOY_STAGES


class DeployResult(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    BLOCKED = "blocked"


_RESULT_OF = {
    Outcome.RELEASED: DeployResult.PASSED,
    Outcome.ROLLED_BACK: DeployResult.FAILED,
    Outcome.FAILED: DeployResult.FAILED,
    Outcome.ROLLBACK_FAILED: DeployResult.FAILED,
    Outcome.BLOCKED: DeployResult.BLOCKED,
}


def deploy_result(outcome: Outcome) -> DeployResult:
    """The deploy's result for a run outcome (the definition, see the module)."""
    return _RESULT_OF[outcome]


def deploy_duration_s(report: RunReport) -> float | None:
    """Seconds spent in the deploy stages; None when the run never reached the preview."""
    stages = [s for s in report.stages if s.name in DEPLOY_STAGES]
    return round(sum(s.duration_s for s in stages), 3) if stages else None


class RunRecordOfReport(BaseModel):
    """The machine-readable part of one run's report, as embedded in its artifact."""

    service: str
    environment: str
    outcome: Outcome
    revision: str | None
    started_at: datetime
    finished_at: datetime
    deploy_s: float | None
    """Deploy duration; None: the run never reached the preview (no deploy)."""

    @property
    def result(self) -> DeployResult:
        return deploy_result(self.outcome)


_MARK = "runbook-run-record"
_EMBEDDED = re.compile(rf"<!-- {_MARK} (\{{.*?\}}) -->", re.DOTALL)


def record_of(report: RunReport) -> RunRecordOfReport:
    started = min((s.started_at for s in report.stages), default=report.finished_at)
    return RunRecordOfReport(
        service=report.service, environment=report.environment, outcome=report.outcome,
        revision=report.revision, started_at=started, finished_at=report.finished_at,
        deploy_s=deploy_duration_s(report))


def embed_record(report: RunReport) -> str:
    """An HTML comment (invisible in the Prefect UI) carrying the run's record."""
    return f"\n<!-- {_MARK} {record_of(report).model_dump_json()} -->\n"


def extract_record(markdown: str) -> RunRecordOfReport | None:
    """The record embedded in a run report artifact; None for reports without one."""
    found = _EMBEDDED.search(markdown or "")
    if found is None:
        return None
    try:
        return RunRecordOfReport.model_validate(json.loads(found.group(1)))
    except (ValueError, ValidationError):
        return None


class PipelineRun(BaseModel):
    """One pipeline run as Prefect holds it: its report's record and where the service's
    source was (the run's ``service_dir`` parameter)."""

    record: RunRecordOfReport
    service_dir: str | None = None
