from pathlib import Path

from runbook.build import content_revision
from runbook.gates import perf_gates, suite_gate
from runbook.models import Outcome, PerfReport, RunReport, SuiteResult
from runbook.policy import Thresholds
from runbook.report import ReportBuilder, to_markdown
from runbook.service import load_service


def perf(requests: int, failures: int, avg: float | None) -> PerfReport:
    return PerfReport(requests=requests, failures=failures, duration_s=10, avg_latency_s=avg,
                      p95_latency_s=avg, max_latency_s=avg)


def test_perf_gates_pass_fast_and_clean() -> None:
    gates = perf_gates(perf(100, 0, 0.05), Thresholds())
    assert [g.passed for g in gates] == [True, True]


def test_perf_gate_fails_on_average_latency_with_value() -> None:
    latency, errors = perf_gates(perf(10, 0, 2.5), Thresholds())
    assert not latency.passed and latency.value == 2.5 and latency.threshold == 2.0
    assert errors.passed


def test_perf_gate_fails_on_error_rate() -> None:
    _, errors = perf_gates(perf(100, 5, 0.01), Thresholds())
    assert not errors.passed and errors.value == 0.05


def test_perf_gates_fail_without_requests() -> None:
    assert not any(g.passed for g in perf_gates(perf(0, 0, None), Thresholds()))


def test_suite_gate() -> None:
    assert suite_gate(SuiteResult(exit_code=0, duration_s=1, output_tail="")).passed
    assert not suite_gate(SuiteResult(exit_code=1, duration_s=1, output_tail="")).passed


def test_report_builder_times_stages_and_records_failures() -> None:
    builder = ReportBuilder(RunReport(outcome=Outcome.FAILED, service="a", environment="staging",
                                      strategy="blue-green", target="docker"))
    with builder.stage("build"):
        pass
    try:
        with builder.stage("test"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    builder.skip("scan", "not configured")
    report = builder.finish(Outcome.BLOCKED, "why")
    assert [(s.name, s.status.value) for s in report.stages] == [
        ("build", "passed"), ("test", "failed"), ("scan", "skipped")]
    assert report.stages[1].detail == "boom"
    assert "**blocked**" in to_markdown(report)


def test_content_revision_follows_content_and_build_args(tmp_path: Path) -> None:
    (tmp_path / "service.yaml").write_text("name: a\nport: 80\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    service = load_service(tmp_path)
    first = content_revision(service, {})
    assert content_revision(service, {}) == first
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"noise")
    assert content_revision(service, {}) == first
    assert content_revision(service, {"ERROR_RATE": "0.3"}) != first
    (tmp_path / "app.py").write_text("print(1)\n")
    assert content_revision(service, {}) != first
