"""The latency chart: this release's percentiles next to the baseline's (PNG, matplotlib)."""

from __future__ import annotations

from pathlib import Path

from runbook.models import PerfReport
from runbook.png_chart import png_figure

CHART_METRICS = (("avg", "avg_latency_s"), ("p50", "p50_latency_s"), ("p90", "p90_latency_s"),
                 ("p95", "p95_latency_s"), ("p99", "p99_latency_s"))


def _millis(report: PerfReport) -> list[float]:
    return [(getattr(report, field) or 0.0) * 1000 for _, field in CHART_METRICS]


def latency_chart(
    current: PerfReport, baseline: PerfReport | None, path: Path, title: str,
    current_label: str = "this release", baseline_label: str = "baseline",
) -> Path:
    """Grouped bars of average and percentile latency (ms); written to ``path`` as PNG."""
    series = [(current_label, _millis(current))]
    if baseline is not None:
        series.append((baseline_label, _millis(baseline)))
    width = 0.8 / len(series)
    with png_figure(path, size=(7, 3.5)) as axes:
        for index, (label, values) in enumerate(series):
            positions = [i + index * width for i in range(len(CHART_METRICS))]
            bars = axes.bar(positions, values, width, label=label)
            axes.bar_label(bars, fmt="%.1f", fontsize=7)  # sub-millisecond values too
        axes.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(CHART_METRICS))],
                        [name for name, _ in CHART_METRICS])
        axes.set_ylabel("latency (ms)")
        axes.set_title(title, fontsize=10)
        axes.legend()
    return path
