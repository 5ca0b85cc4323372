"""The daily health trend chart: success rate and average duration of builds and deploys
per day (PNG, matplotlib)."""

from __future__ import annotations

from pathlib import Path

from runbook.ops.health import RunKind
from runbook.ops.trend import DayStats


def trend_chart(trend: list[DayStats], path: Path, title: str) -> Path:
    """Two panels over the days of ``trend``: success rate (%) and average duration (min).
    Days without runs are gaps, not zeros."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a worker renders to files only
    from matplotlib import pyplot

    days = sorted({d.day for d in trend})
    labels = [f"{d:%m-%d}" for d in days]
    figure, (rates, durations) = pyplot.subplots(2, 1, figsize=(7, 5), dpi=100, sharex=True)
    try:
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
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
    return path


def _or_nan(value: float | None, scale: float) -> float:
    return float("nan") if value is None else value * scale
