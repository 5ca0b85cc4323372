"""The perf check's report: a Prefect artifact and, when asked, a JSON file."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from runbook.perf.check import PerfCheckReport, check_markdown


@task(name="publish_perf_check", cache_policy=NO_CACHE)
def publish_perf_check(report: PerfCheckReport, path: str | None) -> None:
    create_markdown_artifact(
        key=f"perf-check-{report.service}-{report.environment}",
        markdown=check_markdown(report),
        description=f"{report.service} {report.environment}: perf check "
                    f"{'passed' if report.passed else 'failed'}",
    )
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(target.suffix + ".tmp")
        temporary.write_text(report.model_dump_json(indent=2) + "\n")
        temporary.replace(target)
