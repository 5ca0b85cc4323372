"""Release gates: pure functions from measured results to pass/fail with value and threshold."""

from __future__ import annotations

from runbook import testresults
from runbook.models import Gate, PerfReport, ResourceUsage, SuiteResult
from runbook.names import BASELINE_RATIO_ALERT, GateName, baseline_ratio_gate
from runbook.perf.degradation import Degradation
from runbook.policy import Thresholds

TIMEOUT_EXIT_CODE = 124  # what run_to_completion reports for a command past its deadline


GATE_OUTPUT_TAIL_CHARS = 800


def suite_gate(result: SuiteResult) -> Gate:
    """Exit code 0 passes; a failure names the failed tests and ends with the output's tail."""
    detail = "exit code of the service's test command"
    if result.exit_code != 0:
        detail = describe_suite(result) + "; output tail: " + result.output_tail[
            -GATE_OUTPUT_TAIL_CHARS:].strip()
    return Gate(name=GateName.TESTS, passed=result.exit_code == 0, value=result.exit_code,
                threshold=0, detail=detail)


def describe_suite(result: SuiteResult) -> str:
    """One line for the test stage: exit code, time and, on failure, which tests failed."""
    line = f"exit code {result.exit_code} in {result.duration_s:.1f} s"
    if result.exit_code == 0:
        return line
    if result.exit_code == TIMEOUT_EXIT_CODE:
        return line + " (killed at the test deadline)"
    if not result.failed_tests:
        return line + "; failed tests: not named in the output (no JUnit report, no "
        "unittest/pytest failure lines)"
    return (f"{line}; {len(result.failed_tests)} failed: "
            + testresults.describe(result.failed_tests))


def perf_gates(
    report: PerfReport, thresholds: Thresholds, required_rps: float | None = None,
    degradation: Degradation | None = None,
) -> list[Gate]:
    """Perf gates, each with value and threshold; no requests at all is a failure.

    Always: average latency and error rate. Throughput when ``required_rps`` is set; CPU and
    memory when the report carries resources (not measured is a failure, never a pass);
    the baseline comparison when ``degradation`` is given.
    """
    gates = _latency_and_errors(report, thresholds)
    if required_rps is not None:
        gates.append(Gate(name=GateName.PERF_RPS, passed=report.rps >= required_rps,
                          value=round(report.rps, 2), threshold=required_rps,
                          detail=f"{report.requests} requests in {report.duration_s:.1f} s"))
    if report.resources is not None:
        gates += _resource_gates(report.resources, thresholds)
    if degradation is not None:
        gates += _baseline_gates(degradation)
    return gates


def _resource_gates(usage: ResourceUsage, thresholds: Thresholds) -> list[Gate]:
    cpu, memory = usage.cpu_avg_pct, usage.memory_max_pct
    return [
        Gate(name=GateName.PERF_CPU_PCT, passed=cpu is not None and cpu < thresholds.cpu_max_pct,
             value=cpu, threshold=thresholds.cpu_max_pct,
             detail=f"average CPU during the test, % of the limit ({usage.source}; "
                    f"{usage.detail})"),
        Gate(name=GateName.PERF_MEMORY_PCT,
             passed=memory is not None and memory < thresholds.memory_max_pct,
             value=memory, threshold=thresholds.memory_max_pct,
             detail=f"peak memory during the test, % of the limit ({usage.source}; "
                    f"{usage.detail})"),
    ]


def _baseline_gates(degradation: Degradation) -> list[Gate]:
    if degradation.baseline_revision is None:
        return [Gate(name=GateName.PERF_BASELINE, passed=True, value=None,
                     threshold=degradation.limit_ratio,
                     detail="no released revision yet: this release sets the baseline")]
    return [
        Gate(name=baseline_ratio_gate(c.metric), alert_kind=BASELINE_RATIO_ALERT,
             passed=not c.degraded, value=c.ratio, threshold=degradation.limit_ratio,
             detail=f"{c.current_s} s against {c.baseline_s} s of revision "
                    f"{degradation.baseline_revision}")
        for c in degradation.comparisons
    ]


def _latency_and_errors(report: PerfReport, thresholds: Thresholds) -> list[Gate]:
    avg = report.avg_latency_s
    rate = report.error_rate
    return [
        Gate(
            name=GateName.PERF_AVG_LATENCY_S,
            passed=avg is not None and avg < thresholds.gate_avg_latency_s,
            value=None if avg is None else round(avg, 4),
            threshold=thresholds.gate_avg_latency_s,
            detail=f"average response time over {report.requests} requests"
            if avg is not None else "no request completed",
        ),
        Gate(
            name=GateName.PERF_ERROR_RATE,
            passed=rate is not None and rate < thresholds.gate_error_rate,
            value=None if rate is None else round(rate, 4),
            threshold=thresholds.gate_error_rate,
            detail=f"{report.failures} of {report.requests} requests failed",
        ),
    ]


def failed(gates: list[Gate]) -> list[Gate]:
    return [g for g in gates if not g.passed]


def describe_failures(gates: list[Gate]) -> str:
    return "; ".join(f"{g.name}={g.value} (threshold {g.threshold})" for g in failed(gates))
