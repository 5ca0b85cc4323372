"""The perf stage's markdown: totals, endpoints, resources and the baseline comparison."""

from __future__ import annotations

import base64
from pathlib import Path

from runbook.models import EndpointStats, Gate, PerfReport
from runbook.perf.degradation import Degradation


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    # Percentiles are microsecond-exact: a 0.61 ms p50 shows as 0.61, not 1.
    millis = value * 1000
    return f"{millis:.0f}" if millis >= 100 else f"{millis:.3g}"


def _row(stats: EndpointStats) -> str:
    rate = "-" if stats.error_rate is None else f"{stats.error_rate:.2%}"
    latencies = " | ".join(_ms(getattr(stats, f"{m}_latency_s"))
                           for m in ("avg", "p50", "p90", "p95", "p99", "max"))
    return (f"| {stats.name} | {stats.requests} | {stats.failures} | {rate} | "
            f"{stats.rps:.1f} | {latencies} |")


def _timing_note(report: PerfReport) -> list[str]:
    """What the latencies measure: the connection's time where the plugin had it."""
    if report.timed_at_connection is None or not report.requests:
        return []
    share = report.timed_at_connection / report.requests
    if share >= 0.995:
        what = "all requests timed at the connection"
    elif report.timed_at_connection == 0:
        what = "Locust's own times (this client is not timed at the connection)"
    else:
        what = f"{share:.0%} of requests timed at the connection, the rest Locust's own times"
    return [f"Latencies: {what}. At the connection means from the request's write to the "
            "response's last byte, as wrk and k6 time them; Locust's own time (its CSV "
            "files and web UI) adds the client's work, about 1 ms per request.", ""]


def _pct(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f} %"


def perf_markdown(
    title: str, report: PerfReport, degradation: Degradation, gates: list[Gate],
    chart: Path | None = None,
) -> str:
    """The whole perf result as one markdown document (for the Prefect artifact).

    Args:
        title: First heading, e.g. "perf: agent-api staging abc123".
        report: This release's load test.
        degradation: Its comparison with the baseline.
        gates: The perf gates, with value and threshold.
        chart: The latency chart PNG, embedded as a data URI when given.
    """
    lines = [f"# {title}", "", f"{report.tool}, {report.users} users, "
             f"{report.duration_s:.1f} s", "",
             "| endpoint | requests | failures | error rate | rps | avg ms | p50 ms | p90 ms "
             "| p95 ms | p99 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             *(_row(e) for e in report.endpoints), _row(report), "",
             *_timing_note(report)]
    if report.resources is not None:
        res = report.resources
        lines += [f"**Resources** ({res.source}; {res.detail}): CPU average "
                  f"{_pct(res.cpu_avg_pct)}, peak {_pct(res.cpu_max_pct)}; memory peak "
                  f"{_pct(res.memory_max_pct)}", ""]
    lines += ["## Baseline", ""]
    if degradation.baseline_revision is None:
        lines += ["No released revision yet: this release sets the first baseline.", ""]
    else:
        lines += [f"Baseline: revision `{degradation.baseline_revision}`; critical above "
                  f"{degradation.limit_ratio}x.", "",
                  "| metric | this release ms | baseline ms | ratio | degraded |",
                  "|---|---:|---:|---:|---|"]
        lines += [f"| {c.metric} | {_ms(c.current_s)} | {_ms(c.baseline_s)} | "
                  f"{'-' if c.ratio is None else f'{c.ratio:.2f}x'} | "
                  f"{'**yes**' if c.degraded else 'no'} |" for c in degradation.comparisons]
        lines.append("")
    lines += ["## Gates", "", "| gate | passed | value | threshold |", "|---|---|---:|---:|"]
    lines += [f"| {g.name} | {'yes' if g.passed else '**no**'} | {g.value} | {g.threshold} |"
              for g in gates]
    if report.failure_samples:
        lines += ["", "## Failures", "", *(f"- `{s}`" for s in report.failure_samples)]
    if chart is not None and chart.exists():
        encoded = base64.b64encode(chart.read_bytes()).decode()
        lines += ["", "## Latency", "", f"![latency chart](data:image/png;base64,{encoded})",
                  "", f"Chart file: `{chart}`"]
    return "\n".join(lines) + "\n"
