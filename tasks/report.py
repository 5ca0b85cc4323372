"""Report stage: the run report as a Prefect artifact and, when asked, a JSON file."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from runbook.models import RunReport
from runbook.report import to_markdown, write_report


@task(name="publish_report", cache_policy=NO_CACHE)
def publish_report(report: RunReport, path: str | None) -> None:
    """The JSON file first (local, what the CLI and CI read), then the Prefect artifact: an
    unreachable Prefect API never costs the caller its report."""
    if path:
        write_report(report, path)
    create_markdown_artifact(
        key=f"run-report-{report.service}-{report.environment}",
        markdown=to_markdown(report),
        description=f"{report.service} {report.environment}: {report.outcome.value}",
    )
