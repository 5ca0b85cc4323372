"""The daily health trend (pure): per calendar day (UTC), build and deploy success rate and
average duration, for the report's chart. A day without runs has None, drawn as a gap."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from statistics import fmean

from pydantic import BaseModel

from runbook.ops.health import RunKind, RunRecord


class DayStats(BaseModel):
    day: date
    kind: RunKind
    runs: int
    success_rate: float | None
    avg_duration_s: float | None


def daily_trend(records: list[RunRecord], now: datetime, days: int) -> list[DayStats]:
    """One entry per kind and day for the ``days`` days ending today, oldest first."""
    today = now.date()
    trend = []
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        for kind in RunKind:
            runs = [r for r in records if r.kind is kind and r.started_at.date() == day
                    and r.started_at <= now]
            trend.append(DayStats(
                day=day, kind=kind, runs=len(runs),
                success_rate=sum(r.ok for r in runs) / len(runs) if runs else None,
                avg_duration_s=fmean(r.duration_s for r in runs) if runs else None))
    return trend
