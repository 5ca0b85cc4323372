"""What one run adds to the pipeline's metrics: pure functions over the run report.

The runbook's pipeline targets (build success > 95 %, deploy success > 98 %, average build
< 10 min, average deploy < 5 min) need counts and duration sums over the runs of a window:
each run's sample is pushed as its own group and
``deployments/prometheus/rules/pipeline.yml`` sums the runs that finished in the window.

"deploy" is not one stage of the report but the part from the preview slot to the end of
verification (rollback included, time spent waiting for a person excluded): it passed when
the release ended live, failed when it was rolled back or broke, blocked when a gate stopped
it before traffic moved (a gate saying no is the pipeline working, not a failed deploy).
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from runbook.models import Outcome, RunReport, StageStatus

DEPLOY_STAGES = ("preview", "perf", "promote", "verify", "retire", "rollback")
_DEPLOY_OUTCOMES = {
    Outcome.RELEASED: "passed",
    Outcome.ROLLED_BACK: "failed",
    Outcome.FAILED: "failed",
    Outcome.ROLLBACK_FAILED: "failed",
    Outcome.BLOCKED: "blocked",
}


class StageSample(BaseModel):
    """One stage of one run: its outcome and how long it took."""

    stage: str
    outcome: str  # passed | failed | skipped | blocked
    duration_s: float


class RunSample(BaseModel):
    """Everything one run contributes, labelled by service and environment."""

    service: str
    environment: str
    run: str
    """The run's own id (its Prefect flow run): the Pushgateway group of this sample."""
    outcome: str  # released | rolled_back | blocked | failed | rollback_failed
    finished_at_s: float  # Unix time
    stages: list[StageSample]


def run_sample(report: RunReport, run: str | None = None) -> RunSample:
    """The run's stage outcomes and durations, plus the derived "deploy" stage; ``run``
    identifies the run (give the same id on a retried push, so it is not counted twice;
    unset: a new one)."""
    stages = [StageSample(stage=s.name, outcome=s.status.value, duration_s=s.duration_s)
              for s in report.stages if s.status is not StageStatus.SKIPPED]
    deploy = [s for s in report.stages if s.name in DEPLOY_STAGES]
    if deploy:
        stages.append(StageSample(stage="deploy", outcome=_DEPLOY_OUTCOMES[report.outcome],
                                  duration_s=round(sum(s.duration_s for s in deploy), 3)))
    return RunSample(service=report.service, environment=report.environment,
                     run=run or uuid.uuid4().hex,
                     outcome=report.outcome.value,
                     finished_at_s=report.finished_at.timestamp(), stages=stages)
