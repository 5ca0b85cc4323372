"""DORA per day (pure) and its chart: deployments, change failure rate and median lead time
for each of the last days, across the services of the report."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import median

from pydantic import BaseModel

from runbook.ops.health import DeployEvent, DeployOutcome


class DoraDay(BaseModel):
    day: date
    deployments: int
    changes: int
    failures: int
    lead_time_s: float | None


def dora_by_day(events: list[DeployEvent], now: datetime, days: int) -> list[DoraDay]:
    """One entry per day for the ``days`` days ending today, oldest first."""
    trend = []
    for offset in range(days - 1, -1, -1):
        day = now.date() - timedelta(days=offset)
        todays = [e for e in events if e.finished_at.date() == day and e.finished_at <= now]
        successes = [e for e in todays if e.outcome is DeployOutcome.SUCCESS]
        changes = [e for e in todays if e.outcome is not DeployOutcome.BLOCKED]
        leads = [(e.finished_at - (e.committed_at or e.started_at)).total_seconds()
                 for e in successes]
        trend.append(DoraDay(
            day=day, deployments=len(successes), changes=len(changes),
            failures=sum(e.outcome is DeployOutcome.FAILURE for e in changes),
            lead_time_s=median(leads) if leads else None))
    return trend


def dora_chart(trend: list[DoraDay], path: Path, title: str) -> Path:
    """Three panels: deployments per day, change failure rate (%, elite line at 15 %),
    median lead time (h, elite line at 24 h). Days without changes are gaps."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    labels = [f"{d.day:%m-%d}" for d in trend]
    nan = float("nan")
    figure, (deploys, failures, leads) = pyplot.subplots(3, 1, figsize=(7, 6), dpi=100,
                                                         sharex=True)
    try:
        deploys.bar(labels, [d.deployments for d in trend])
        deploys.set_ylabel("deploys")
        failures.plot(labels, [100 * d.failures / d.changes if d.changes else nan
                               for d in trend], marker="o")
        failures.axhline(15, linestyle="--", color="green", label="elite <= 15 %")
        failures.set_ylabel("change failure (%)")
        failures.set_ylim(0, 105)
        failures.legend()
        leads.plot(labels, [d.lead_time_s / 3600 if d.lead_time_s is not None else nan
                            for d in trend], marker="o")
        leads.axhline(24, linestyle="--", color="green", label="elite < 1 day")
        leads.set_ylabel("lead time (h)")
        leads.legend()
        deploys.set_title(title, fontsize=10)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
    return path
