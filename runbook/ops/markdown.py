"""Markdown of the scheduled operations' reports (Prefect artifacts)."""

from __future__ import annotations

import base64
from pathlib import Path

from runbook.ops.app_metrics import RouteMetrics
from runbook.ops.base_image import BaseImageStatus
from runbook.ops.cleanup import CleanupPlan
from runbook.ops.health import Dora, PipelineHealth, elite_checks
from runbook.ops.review import RunbookReview
from runbook.ops.scan_review import ScanReview


def health_markdown(health: PipelineHealth, routes: list[RouteMetrics] | None = None,
                    chart: Path | None = None) -> str:
    """The daily report: windows, breaches, application metrics per route (when given) and
    the trend chart embedded as a data URI (when given)."""
    lines = [f"# Pipeline health, {health.generated_at:%Y-%m-%d %H:%M} UTC", "",
             "| kind | window | runs | success | average |", "|---|---|---|---|---|"]
    for w in health.windows:
        rate = "no runs" if w.success_rate is None else f"{w.success_rate:.1%}"
        avg = "-" if w.avg_duration_s is None else f"{w.avg_duration_s:.1f} s"
        lines.append(f"| {w.kind.value} | {w.days} d | {w.runs} | {rate} | {avg} |")
    lines += ["", "## Breaches", ""]
    lines += [f"- {b.summary}" for b in health.breaches] or ["none"]
    if routes is not None:
        lines += ["", "## Application metrics per route", "",
                  "| route | requests | error rate | average response |", "|---|---|---|---|"]
        lines += [_route_row(r) for r in routes] or ["| - | no routes | - | - |"]
    if chart is not None and chart.exists():
        encoded = base64.b64encode(chart.read_bytes()).decode()
        lines += ["", "## Trend", "", f"![health trend](data:image/png;base64,{encoded})",
                  "", f"Chart file: `{chart}`"]
    return "\n".join(lines) + "\n"


def _route_row(route: RouteMetrics) -> str:
    requests = "no data" if route.requests is None else f"{route.requests:.0f}"
    rate = "no data" if route.error_rate is None else f"{route.error_rate:.2%}"
    average = ("no data" if route.avg_response_time_s is None
               else f"{route.avg_response_time_s * 1000:.1f} ms")
    return f"| {route.route} | {requests} | {rate} | {average} |"


def scan_review_markdown(reviews: list[ScanReview]) -> str:
    lines = ["# Weekly security scan review", ""]
    for r in reviews:
        lines += [f"## {r.service}", "",
                  f"new {len(r.new)}, resolved {len(r.resolved)}, still open "
                  f"{len(r.still_open)}, past SLA {len(r.sla_breaches)}", ""]
        lines += [f"- past SLA: {o.finding.severity.value} {o.finding.rule_id} "
                  f"{o.finding.location}, open {o.age_days} d (SLA {o.sla_days} d)"
                  for o in r.sla_breaches]
        lines += [f"- suppression expiring {s.expires}: {s.describe()}"
                  for s in r.expiring_suppressions]
    return "\n".join(lines) + "\n"


def cleanup_markdown(plans: list[CleanupPlan]) -> str:
    lines = ["# Registry cleanup", "", "| repository | kept | deleted tags | bytes freed |",
             "|---|---|---|---|"]
    lines += [f"| {p.repository} | {len(p.keep)} | {len(p.delete_tags)} | {p.bytes_freed} |"
              for p in plans]
    return "\n".join(lines) + "\n"


def base_image_markdown(statuses: list[BaseImageStatus], base: str, base_digest: str) -> str:
    lines = ["# Base-image update check", "", f"Base `{base}` resolves to `{base_digest}`.", "",
             "| service | environment | image | built on it |", "|---|---|---|---|"]
    lines += [f"| {s.service} | {s.environment} | `{s.image}` | "
              f"{'yes' if s.up_to_date else 'no: rebuild'} |" for s in statuses]
    if not statuses:
        lines.append("| - | - | nothing deployed | - |")
    return "\n".join(lines) + "\n"


def review_markdown(review: RunbookReview) -> str:
    since = (f"since the last review ({review.last_review:%Y-%m-%d})" if review.last_review
             else "(no review recorded yet: the whole history)")
    lines = [f"# Quarterly runbook review, {review.generated_at:%Y-%m-%d}", "",
             f"Changes to {', '.join(f'`{p}`' for p in review.watched)} {since}.", ""]
    if not review.in_git:
        return "\n".join([*lines, "Not running in a git checkout: no history to list; "
                          "review the files by hand."]) + "\n"
    if not review.commits:
        return "\n".join([*lines, "No changes."]) + "\n"
    lines += ["| file | commits |", "|---|---|"]
    lines += [f"| `{path}` | {count} |" for path, count in review.changed_paths.items()]
    lines += ["", "## Commits", ""]
    lines += [f"- {c.committed_at:%Y-%m-%d} `{c.sha[:10]}` {c.subject} ({c.author})"
              for c in review.commits]
    return "\n".join(lines) + "\n"


def dora_markdown(metrics: list[Dora], chart: Path | None = None) -> str:
    """The four keys per service and environment, each beside the DORA elite level."""
    lines = ["## DORA, beside the elite levels", ""]
    if not metrics:
        lines.append("no deploys in the window")
    for m in metrics:
        lines += [f"### {m.service} / {m.environment} (last {m.days} d)", "",
                  "| key | value | elite | meets |", "|---|---|---|---|"]
        lines += [f"| {c.key} | {c.value} | {c.elite} | "
                  f"{'no data' if c.meets is None else ('yes' if c.meets else '**no**')} |"
                  for c in elite_checks(m)]
        lines.append("")
    if chart is not None and chart.exists():
        encoded = base64.b64encode(chart.read_bytes()).decode()
        lines += ["### DORA trend", "", f"![dora trend](data:image/png;base64,{encoded})", "",
                  f"Chart file: `{chart}`"]
    return "\n".join(lines) + "\n"
