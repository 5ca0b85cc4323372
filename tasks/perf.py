"""Perf stage (skeleton): real HTTP load against the preview slot only."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runbook.load import LoadResult, run_load
from runbook.models import PerfReport
from runbook.policy import PerfSettings


@task(name="load_test_preview", cache_policy=NO_CACHE)
def load_test_preview(preview_url: str, paths: list[str], perf: PerfSettings) -> PerfReport:
    logger = get_run_logger()

    def progress(done: float, result: LoadResult) -> None:
        logger.info("load %3.0f%%: %d requests, %d failed", done * 100, result.requests,
                    result.failures)

    report = run_load(preview_url, paths, perf.users, perf.duration_s, perf.request_timeout_s,
                      on_progress=progress)
    logger.info("load test: %d requests, %.1f rps, avg %s s, error rate %s", report.requests,
                report.rps, report.avg_latency_s, report.error_rate)
    return report
