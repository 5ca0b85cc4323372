"""Daily pipeline health and DORA metrics from run records and incidents (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from statistics import fmean, median

from pydantic import BaseModel

from runbook.ops.deploys import DeployResult, PipelineRun
from runbook.ops.policy import HealthTargets


class RunKind(StrEnum):
    BUILD = "build"
    DEPLOY = "deploy"


class RunRecord(BaseModel):
    """One finished build or deploy, as Prefect recorded it."""

    kind: RunKind
    ok: bool
    started_at: datetime
    duration_s: float


class WindowStats(BaseModel):
    """One kind of run over one window. None: no runs, so no rate (never a pass)."""

    kind: RunKind
    days: int
    runs: int
    succeeded: int
    success_rate: float | None
    avg_duration_s: float | None


class Breach(BaseModel):
    kind: RunKind
    days: int
    metric: str  # success_rate | avg_duration_s | no_runs
    value: float | None
    threshold: float
    summary: str


class PipelineHealth(BaseModel):
    generated_at: datetime
    windows: list[WindowStats]
    breaches: list[Breach]


def window_stats(records: list[RunRecord], kind: RunKind, now: datetime, days: int
                 ) -> WindowStats:
    """Success rate and average duration of ``kind`` runs started in the last ``days``."""
    since = now - timedelta(days=days)
    runs = [r for r in records if r.kind is kind and since <= r.started_at <= now]
    succeeded = sum(r.ok for r in runs)
    return WindowStats(
        kind=kind, days=days, runs=len(runs), succeeded=succeeded,
        success_rate=succeeded / len(runs) if runs else None,
        avg_duration_s=fmean(r.duration_s for r in runs) if runs else None,
    )


def pipeline_health(records: list[RunRecord], now: datetime, targets: HealthTargets
                    ) -> PipelineHealth:
    """Every window of every kind, and each breach of the runbook targets."""
    windows = [window_stats(records, kind, now, days)
               for days in targets.windows_days for kind in RunKind]
    breaches = [b for w in windows for b in _breaches(w, targets)]
    return PipelineHealth(generated_at=now, windows=windows, breaches=breaches)


def _breaches(stats: WindowStats, targets: HealthTargets) -> list[Breach]:
    rate_min, avg_max = (
        (targets.build_success_min, targets.build_avg_max_s) if stats.kind is RunKind.BUILD
        else (targets.deploy_success_min, targets.deploy_avg_max_s))
    where = f"{stats.kind.value} over {stats.days} d"
    if stats.success_rate is None or stats.avg_duration_s is None:
        return []  # no runs is reported in the window, not alerted: a quiet day is no fault
    found = []
    if stats.success_rate <= rate_min:
        found.append(Breach(kind=stats.kind, days=stats.days, metric="success_rate",
                            value=stats.success_rate, threshold=rate_min,
                            summary=f"{where}: success {stats.success_rate:.1%} "
                                    f"(target > {rate_min:.0%})"))
    if stats.avg_duration_s >= avg_max:
        found.append(Breach(kind=stats.kind, days=stats.days, metric="avg_duration_s",
                            value=stats.avg_duration_s, threshold=avg_max,
                            summary=f"{where}: average {stats.avg_duration_s:.0f} s "
                                    f"(target < {avg_max:.0f} s)"))
    return found


class DeployOutcome(StrEnum):
    SUCCESS = "success"  # live and verified
    FAILURE = "failure"  # rolled back or broke in production traffic
    BLOCKED = "blocked"  # a gate said no before traffic moved: not a change failure


_OUTCOME_OF = {DeployResult.PASSED: DeployOutcome.SUCCESS,
               DeployResult.FAILED: DeployOutcome.FAILURE,
               DeployResult.BLOCKED: DeployOutcome.BLOCKED}


class DeployEvent(BaseModel):
    """One pipeline run of a service into an environment."""

    service: str
    environment: str
    started_at: datetime
    finished_at: datetime
    outcome: DeployOutcome
    revision: str | None = None
    committed_at: datetime | None = None
    """Commit time of the delivered source; None when it is not known (no git checkout)."""


class Restore(BaseModel):
    """A failure in an environment and when service was restored (a resolved incident)."""

    service: str
    environment: str
    failed_at: datetime
    restored_at: datetime


class Dora(BaseModel):
    """DORA's four keys for one service and environment over ``days``."""

    service: str
    environment: str
    days: int
    deployments: int
    deployment_frequency_per_day: float
    lead_time_s: float | None
    """Median commit to live (pipeline start to live for deliveries whose commit is not
    known; ``lead_time_from_commit`` says how many started at a commit)."""
    lead_time_from_commit: int = 0
    change_failure_rate: float | None
    time_to_restore_s: float | None
    """Median time from a failure to service restored: resolved incidents when there are
    any, else from a failed deploy to the next successful one."""
    restore_from: str | None = None
    """``incidents`` or ``deploys``: what the time to restore was measured on."""


def deploy_events(runs: list[PipelineRun], commits: dict[str, list[datetime]]
                  ) -> list[DeployEvent]:
    """Runs that deployed (reached the preview) as DORA events; ``commits``: commit times
    per service directory, for the lead time."""
    events = []
    for run in runs:
        record = run.record
        if record.deploy_s is None:
            continue
        committed = commit_before(commits.get(run.service_dir or "", []), record.started_at)
        events.append(DeployEvent(
            service=record.service, environment=record.environment,
            started_at=record.started_at, finished_at=record.finished_at,
            outcome=_OUTCOME_OF[record.result], revision=record.revision,
            committed_at=committed))
    return events


def deploy_run_records(runs: list[PipelineRun]) -> list[RunRecord]:
    """The deploys of pipeline runs as health records: blocked ones count neither way."""
    return [RunRecord(kind=RunKind.DEPLOY, ok=run.record.result is DeployResult.PASSED,
                      started_at=run.record.started_at, duration_s=run.record.deploy_s)
            for run in runs if run.record.deploy_s is not None
            and run.record.result is not DeployResult.BLOCKED]


def commit_before(commit_times: list[datetime], at: datetime) -> datetime | None:
    """The newest commit at or before ``at``: the source a run started then delivered."""
    earlier = [t for t in commit_times if t <= at]
    return max(earlier) if earlier else None


def dora(events: list[DeployEvent], now: datetime, days: int,
         restores: list[Restore] | None = None) -> list[Dora]:
    """DORA metrics per (service, environment) for events finished in the last ``days``."""
    since = now - timedelta(days=days)
    recent = sorted((e for e in events if since <= e.finished_at <= now),
                    key=lambda e: e.finished_at)
    recent_restores = [r for r in restores or [] if since <= r.restored_at <= now]
    keys = sorted({(e.service, e.environment) for e in recent})
    return [_dora_of([e for e in recent if (e.service, e.environment) == key], key, days,
                     [r for r in recent_restores if (r.service, r.environment) == key])
            for key in keys]


def _dora_of(events: list[DeployEvent], key: tuple[str, str], days: int,
             restores: list[Restore]) -> Dora:
    successes = [e for e in events if e.outcome is DeployOutcome.SUCCESS]
    changes = [e for e in events if e.outcome is not DeployOutcome.BLOCKED]
    failures = [e for e in changes if e.outcome is DeployOutcome.FAILURE]
    leads = [(e.finished_at - (e.committed_at or e.started_at)).total_seconds()
             for e in successes]
    if restores:
        restore = median((r.restored_at - r.failed_at).total_seconds() for r in restores)
        basis: str | None = "incidents"
    else:
        restore = _median_restore(events)
        basis = "deploys" if restore is not None else None
    return Dora(
        service=key[0], environment=key[1], days=days, deployments=len(successes),
        deployment_frequency_per_day=len(successes) / days,
        lead_time_s=median(leads) if leads else None,
        lead_time_from_commit=sum(e.committed_at is not None for e in successes),
        change_failure_rate=len(failures) / len(changes) if changes else None,
        time_to_restore_s=restore, restore_from=basis,
    )


def _median_restore(events: list[DeployEvent]) -> float | None:
    restores = []
    failed_at: datetime | None = None
    for event in events:
        if event.outcome is DeployOutcome.FAILURE and failed_at is None:
            failed_at = event.finished_at
        elif event.outcome is DeployOutcome.SUCCESS and failed_at is not None:
            restores.append((event.finished_at - failed_at).total_seconds())
            failed_at = None
    return median(restores) if restores else None


class EliteCheck(BaseModel):
    """One DORA key against the elite level."""

    key: str
    value: str
    elite: str
    meets: bool | None
    """None: no data (never a pass)."""


ELITE_LEAD_TIME_S = 86400.0
ELITE_CHANGE_FAILURE_RATE = 0.15
ELITE_TIME_TO_RESTORE_S = 3600.0
ELITE_DEPLOYS_PER_DAY = 1.0
"""DORA elite: on-demand deploys (several a day; at least one a day here), lead time for
changes < 1 day, change failure rate <= 15 %, time to restore < 1 hour."""


def elite_checks(metrics: Dora) -> list[EliteCheck]:
    """The four keys of one service and environment beside the DORA elite levels."""
    def duration(seconds: float | None) -> str:
        if seconds is None:
            return "no data"
        return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"

    def below(value: float | None, limit: float, inclusive: bool = False) -> bool | None:
        if value is None:
            return None
        return value <= limit if inclusive else value < limit

    rate = metrics.change_failure_rate
    return [
        EliteCheck(key="deployment frequency",
                   value=f"{metrics.deployment_frequency_per_day:.2f}/day "
                         f"({metrics.deployments} in {metrics.days} d)",
                   elite="on demand (>= 1/day)",
                   meets=metrics.deployment_frequency_per_day >= ELITE_DEPLOYS_PER_DAY),
        EliteCheck(key="lead time for changes",
                   value=duration(metrics.lead_time_s)
                   + f" ({metrics.lead_time_from_commit}/{metrics.deployments} from the commit)",
                   elite="< 1 day", meets=below(metrics.lead_time_s, ELITE_LEAD_TIME_S)),
        EliteCheck(key="change failure rate",
                   value="no data" if rate is None else f"{rate:.0%}", elite="<= 15 %",
                   meets=below(rate, ELITE_CHANGE_FAILURE_RATE, inclusive=True)),
        EliteCheck(key="time to restore",
                   value=duration(metrics.time_to_restore_s)
                   + (f" (from {metrics.restore_from})" if metrics.restore_from else ""),
                   elite="< 1 hour",
                   meets=below(metrics.time_to_restore_s, ELITE_TIME_TO_RESTORE_S)),
    ]
