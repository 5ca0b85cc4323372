"""Daily pipeline health and DORA metrics from run records (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from statistics import fmean, median

from pydantic import BaseModel

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


class DeployEvent(BaseModel):
    """One pipeline run of a service into an environment."""

    service: str
    environment: str
    started_at: datetime
    finished_at: datetime
    outcome: DeployOutcome


class Dora(BaseModel):
    """DORA's four keys for one service and environment over ``days``."""

    service: str
    environment: str
    days: int
    deployments: int
    deployment_frequency_per_day: float
    lead_time_s: float | None
    """Median pipeline start to live. The commit time is not known here, so this is the
    pipeline's share of the lead time."""
    change_failure_rate: float | None
    time_to_restore_s: float | None
    """Median time from a failed deploy to the next successful one."""


def dora(events: list[DeployEvent], now: datetime, days: int) -> list[Dora]:
    """DORA metrics per (service, environment) for events finished in the last ``days``."""
    since = now - timedelta(days=days)
    recent = sorted((e for e in events if since <= e.finished_at <= now),
                    key=lambda e: e.finished_at)
    keys = sorted({(e.service, e.environment) for e in recent})
    return [_dora_of([e for e in recent if (e.service, e.environment) == key], key, days)
            for key in keys]


def _dora_of(events: list[DeployEvent], key: tuple[str, str], days: int) -> Dora:
    successes = [e for e in events if e.outcome is DeployOutcome.SUCCESS]
    changes = [e for e in events if e.outcome is not DeployOutcome.BLOCKED]
    failures = [e for e in changes if e.outcome is DeployOutcome.FAILURE]
    return Dora(
        service=key[0], environment=key[1], days=days, deployments=len(successes),
        deployment_frequency_per_day=len(successes) / days,
        lead_time_s=median((e.finished_at - e.started_at).total_seconds()
                           for e in successes) if successes else None,
        change_failure_rate=len(failures) / len(changes) if changes else None,
        time_to_restore_s=_median_restore(events),
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
