"""Release gates: pure functions from measured results to pass/fail with value and threshold."""

from __future__ import annotations

from runbook.models import Finding, Gate, PerfReport, SuiteResult
from runbook.policy import Thresholds

BLOCKING_LINT_SEVERITIES = frozenset({"error"})


def suite_gate(result: SuiteResult) -> Gate:
    return Gate(
        name="tests",
        passed=result.exit_code == 0,
        value=result.exit_code,
        threshold=0,
        detail="exit code of the service's test command",
    )


def dockerfile_lint_gate(findings: list[Finding]) -> Gate:
    blocking = [f for f in findings if f.severity in BLOCKING_LINT_SEVERITIES]
    return Gate(
        name="dockerfile_lint",
        passed=not blocking,
        value=len(blocking),
        threshold=0,
        detail="; ".join(f"{f.rule_id} {f.location}: {f.title}" for f in blocking[:5]),
    )


def perf_gates(report: PerfReport, thresholds: Thresholds) -> list[Gate]:
    """Average latency and error rate under load; no requests at all is a failure."""
    avg = report.avg_latency_s
    rate = report.error_rate
    return [
        Gate(
            name="perf_avg_latency_s",
            passed=avg is not None and avg < thresholds.gate_avg_latency_s,
            value=None if avg is None else round(avg, 4),
            threshold=thresholds.gate_avg_latency_s,
            detail=f"average response time over {report.requests} requests"
            if avg is not None else "no request completed",
        ),
        Gate(
            name="perf_error_rate",
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
