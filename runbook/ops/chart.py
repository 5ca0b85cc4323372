"""The scheduled operations' charts (PNG): the daily health trend (success rate and average
duration of builds and deploys per day) and the DORA trend."""

from __future__ import annotations

from pathlib import Path

from runbook.ops.dora_trend import DoraDay
from runbook.ops.health import RunKind
from runbook.ops.trend import DayStats
from runbook.png_chart import png_figure


def trend_chart(trend: list[DayStats], path: Path, title: str) -> Path:
    """Two panels over the days of ``trend``: success rate (%) and average duration (min).
    Days without runs are gaps, not zeros."""
    days = sorted({d.day for d in trend})
    labels = [f"{d:%m-%d}" for d in days]
    with png_figure(path, 2, size=(7, 5), sharex=True) as (rates, durations):
        for kind in RunKind:
            by_day = {d.day: d for d in trend if d.kind is kind}
            rate = [_or_nan(by_day[d].success_rate, 100) if d in by_day else float("nan")
                    for d in days]
            minutes = [_or_nan(by_day[d].avg_duration_s, 1 / 60) if d in by_day
                       else float("nan") for d in days]
            rates.plot(labels, rate, marker="o", label=kind.value)
            durations.plot(labels, minutes, marker="o", label=kind.value)
        rates.set_ylabel("success (%)")
        rates.set_ylim(0, 105)
        rates.legend()
        durations.set_ylabel("average (min)")
        durations.legend()
        rates.set_title(title, fontsize=10)
    return path



def dora_chart(trend: list[DoraDay], path: Path, title: str) -> Path:
    """Three panels: deployments per day, change failure rate (%, elite line at 15 %),
    median lead time (h, elite line at 24 h). Days without changes are gaps."""
    labels = [f"{d.day:%m-%d}" for d in trend]
    nan = float("nan")
    with png_figure(path, 3, size=(7, 6), sharex=True) as (deploys, failures, leads):
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
    return path


def _or_nan(value: float | None, scale: float) -> float:
    return float("nan") if value is None else value * scale
