"""DORA per day (pure): deployments, change failure rate and median lead time for each of
the last days, across the services of the report. The chart: :func:`runbook.ops.chart.dora_chart`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
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
