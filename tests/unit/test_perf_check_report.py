"""The perf check's verdict and alert (pure), and `runbook perf`'s bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runbook.alerts.models import AlertKind
from runbook.models import Gate
from runbook.perf.check import PerfCheckReport, check_alert, check_markdown

RUNBOOK = str(Path(sys.executable).parent / "runbook")
SAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "agent-api")


def _report(*gates: Gate) -> PerfCheckReport:
    return PerfCheckReport(service="agent-api", environment="staging", target="docker",
                           revision="abc123", gates=list(gates))


def _gate(name: str, passed: bool) -> Gate:
    return Gate(name=name, passed=passed, value=1.0, threshold=2.0)


def test_passes_only_when_gates_were_evaluated_and_all_passed() -> None:
    passed = _report(_gate("perf_avg_latency_s", True), _gate("perf_error_rate", True))
    assert passed.concluded().passed
    assert passed.concluded().finished_at is not None
    assert check_alert(passed.concluded()) is None

    nothing = _report().concluded()
    assert not nothing.passed and nothing.reason == "no perf gate was evaluated"

    errored = passed.concluded("TransientError: registry unreachable")
    assert not errored.passed and errored.reason.startswith("TransientError")


def test_failed_gates_are_a_performance_degradation_alert() -> None:
    report = _report(_gate("perf_avg_latency_s", False), _gate("perf_error_rate", True))
    concluded = report.concluded()
    assert not concluded.passed
    assert concluded.reason == "gate failed: perf_avg_latency_s=1.0 (threshold 2.0)"
    alert = check_alert(concluded)
    assert alert is not None and alert.kind is AlertKind.PERFORMANCE_DEGRADATION
    assert "abc123" in alert.summary and alert.details == concluded.reason
    assert "**no**" in check_markdown(concluded)


def test_a_check_that_could_not_run_is_a_pipeline_failure_alert() -> None:
    report = _report().concluded("agent-api has no live revision in staging")
    alert = check_alert(report)
    assert alert is not None and alert.kind is AlertKind.PIPELINE_FAILURE


def _perf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNBOOK, "perf", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = _perf(str(tmp_path / "absent"), "--env", "staging")
    bad_env = _perf(SAMPLE, "--env", "qa")
    bad_config = tmp_path / "runbook.yaml"
    bad_config.write_text("environments: {staging: {target: mainframe}}\n")
    config = _perf(SAMPLE, "--env", "staging", "--config", str(bad_config))
    config_and_target = _perf(SAMPLE, "--env", "staging", "--target", "docker",
                              "--config", str(bad_config))
    for done in (missing, bad_env, config, config_and_target):
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "runbook.yaml" in config.stderr and "target" in config.stderr
