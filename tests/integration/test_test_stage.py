"""The test stage's container run: exit code, output, and a report copied out of it."""

from __future__ import annotations

import pytest

from runbook.adapters import docker_engine
from runbook.scan.coverage import from_test_stage
from runbook.settings import StackSettings
from runbook.testresults import failed_tests

pytestmark = pytest.mark.stack
WRITE_REPORT = (
    "open('/tmp/coverage.xml', 'w').write("
    "'<coverage line-rate=\"0.875\" lines-covered=\"7\" lines-valid=\"8\"/>'); print('ran')"
)


def test_coverage_report_is_copied_out_of_the_container(stack_settings: StackSettings) -> None:
    client = docker_engine.connect(stack_settings.docker_host)
    run = docker_engine.run_to_completion(
        client, stack_settings.base_image, ["python3", "-c", WRITE_REPORT], timeout_s=60,
        collect="/tmp/coverage.xml",
    )
    assert run.exit_code == 0 and "ran" in run.output
    coverage = from_test_stage("/tmp/coverage.xml", run.collected)
    assert coverage.line_rate_pct == 87.5


def test_missing_declared_report_is_not_measured(stack_settings: StackSettings) -> None:
    client = docker_engine.connect(stack_settings.docker_host)
    run = docker_engine.run_to_completion(
        client, stack_settings.base_image, ["python3", "-c", "raise SystemExit(3)"],
        timeout_s=60, collect="/tmp/coverage.xml",
    )
    assert run.exit_code == 3 and run.collected is None
    missing = from_test_stage("/tmp/coverage.xml", run.collected)
    assert missing.line_rate_pct is None and "not measured" in missing.detail  # never a 0 %
    assert from_test_stage(None, None).line_rate_pct is None


def test_deadline_kills_the_container(stack_settings: StackSettings) -> None:
    client = docker_engine.connect(stack_settings.docker_host)
    run = docker_engine.run_to_completion(
        client, stack_settings.base_image, ["python3", "-c", "import time; time.sleep(60)"],
        timeout_s=2,
    )
    assert run.exit_code == 124


def test_a_junit_report_is_copied_out_beside_the_coverage_report(
        stack_settings: StackSettings) -> None:
    write_junit = (
        "open('/tmp/junit.xml', 'w').write('<testsuite><testcase classname=\"t.A\" "
        "name=\"test_x\"><failure message=\"boom\"/></testcase></testsuite>'); "
        "raise SystemExit(1)"
    )
    client = docker_engine.connect(stack_settings.docker_host)
    run = docker_engine.run_to_completion(
        client, stack_settings.base_image, ["python3", "-c", write_junit], timeout_s=60,
        collect="/tmp/coverage.xml", collect_also=("/tmp/junit.xml", "/tmp/none.xml"),
    )
    assert run.exit_code == 1 and run.collected is None
    junit, missing = run.also_collected
    assert missing is None
    assert [t.name for t in failed_tests(run.output, junit)] == ["t.A.test_x"]
