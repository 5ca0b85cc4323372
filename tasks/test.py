"""Test stage: the service's own test command, inside the image that will ship."""

from __future__ import annotations

import time

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runbook import testresults
from runbook.adapters import docker_engine
from runbook.models import ImageRef, SuiteResult
from runbook.service import ServiceTests
from runbook.settings import StackSettings
from tasks.retry import TRANSIENT_RETRIES

OUTPUT_TAIL_CHARS = 4000


@task(name="run_tests", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def run_tests(image: ImageRef, test: ServiceTests, settings: StackSettings) -> SuiteResult:
    logger = get_run_logger()
    client = docker_engine.connect(settings.docker_host)
    started = time.perf_counter()
    run = docker_engine.run_to_completion(
        client, image.by_digest, test.command, test.timeout_s, collect=test.coverage_path,
        collect_also=(test.junit_path,) if test.junit_path else (),
    )
    tail = run.output[-OUTPUT_TAIL_CHARS:]
    logger.info("tests exited %d\n%s", run.exit_code, tail)
    if test.coverage_path and run.collected is None:
        logger.warning("the test command wrote no coverage report at %s", test.coverage_path)
    junit = run.also_collected[0] if run.also_collected else None
    failed = testresults.failed_tests(run.output, junit) if run.exit_code != 0 else []
    if failed:
        logger.error("failed tests: %s", testresults.describe([t.name for t in failed]))
    return SuiteResult(
        exit_code=run.exit_code, duration_s=round(time.perf_counter() - started, 3),
        output_tail=tail, coverage_xml=run.collected, failed_tests=[t.name for t in failed],
    )
