"""The verdict over check measurements: Argo's rules, missing data never a pass, and a run
must end on successful measurements."""

from datetime import UTC, datetime

import pytest

from runbook.analysis import (
    Observation,
    Phase,
    conclude,
    extra_rounds,
    is_decided,
    judge,
    pending,
    verify_gates,
)
from runbook.checks.model import MetricCheck, NoData, StandardSource
from runbook.checks.standard import ERROR_RATE, Convention, default_checks
from runbook.models import CheckMeasurement

RATE = MetricCheck(name=ERROR_RATE, query="q", failure_condition="result > 0.05",
                   consecutive_error_limit=2)


def seen(value: object = None, error: str | None = None, **values: object) -> Observation:
    return Observation(query="q", result=value, error=error, values=values)


def phase(check: MetricCheck, observation: Observation) -> Phase:
    return judge(check, observation, 1.0).phase


def test_failure_condition_fails_and_names_the_value() -> None:
    result = judge(RATE, seen(0.3), 4.0)
    assert result.phase is Phase.FAILED
    assert result.reason == "30.0 % meets failure condition result > 0.05"
    assert (result.query, result.value, result.condition) == ("q", 0.3, "failure: result > 0.05")


def test_a_measurement_keeps_when_it_was_taken_through_the_report() -> None:
    taken = datetime(2026, 12, 2, 6, 40, 1, tzinfo=UTC)
    result = judge(RATE, seen(0.3), 4.0, taken)
    assert (result.elapsed_s, result.measured_at) == (4.0, taken)
    recorded = CheckMeasurement.model_validate(result.model_dump())
    assert recorded.measured_at == taken
    assert CheckMeasurement.model_validate_json(recorded.model_dump_json()) == recorded


def test_at_threshold_passes() -> None:
    assert phase(RATE, seen(0.05)) is Phase.SUCCESSFUL


def test_no_data_is_inconclusive_or_failed_never_a_pass() -> None:
    assert phase(RATE, seen(None)) is Phase.INCONCLUSIVE
    strict = RATE.model_copy(update={"no_data": NoData.FAILED})
    assert phase(strict, seen(None)) is Phase.FAILED


def test_source_error_is_an_error_measurement() -> None:
    result = judge(RATE, seen(error="prometheus unreachable"), 1.0)
    assert (result.phase, result.reason) == (Phase.ERROR, "source error: prometheus unreachable")


def test_success_and_failure_conditions_follow_argo() -> None:
    both = MetricCheck(name="both", query="q", success_condition="result < 10",
                       failure_condition="result > 50")
    assert phase(both, seen(5)) is Phase.SUCCESSFUL
    assert phase(both, seen(60)) is Phase.FAILED
    assert phase(both, seen(20)) is Phase.INCONCLUSIVE
    only_success = MetricCheck(name="s", query="q", success_condition="result < 10")
    assert phase(only_success, seen(20)) is Phase.FAILED


def test_a_condition_that_cannot_be_decided_is_an_error() -> None:
    assert phase(RATE, seen("not a number")) is Phase.ERROR


def test_provider_names_are_known_to_conditions() -> None:
    health = MetricCheck(name="h", provider="web", url="{{endpoint}}/health",
                         success_condition="status >= 200 and status < 300")
    assert phase(health, seen(200, status=200)) is Phase.SUCCESSFUL
    assert phase(health, seen(503, status=503)) is Phase.FAILED


def results(check: MetricCheck, *observations: Observation) -> list:
    return [judge(check, o, float(i)) for i, o in enumerate(observations)]


def test_run_of_good_measurements_is_successful() -> None:
    verdict = conclude([RATE], results(RATE, seen(0.0), seen(0.01)))
    assert verdict.phase is Phase.SUCCESSFUL and verdict.keep


def test_one_failure_over_the_limit_fails_the_run() -> None:
    measured = results(RATE, seen(0.0), seen(0.3))
    assert is_decided([RATE], measured)
    verdict = conclude([RATE], measured)
    assert verdict.phase is Phase.FAILED
    assert verdict.reasons == ["error-rate: 30.0 % meets failure condition result > 0.05"]


def test_one_success_then_two_errors_is_not_a_pass() -> None:
    measured = results(RATE, seen(0.0), seen(error="down"), seen(error="down"))
    assert not is_decided([RATE], measured)  # within the consecutive error limit of 2
    verdict = conclude([RATE], measured)
    assert verdict.phase is Phase.ERROR and not verdict.keep
    assert "must end on a successful one" in verdict.reasons[0]
    assert pending([RATE], measured) == [RATE]


def test_errors_then_success_ends_on_success() -> None:
    measured = results(RATE, seen(error="down"), seen(error="down"), seen(0.0))
    assert conclude([RATE], measured).phase is Phase.SUCCESSFUL
    assert pending([RATE], measured) == []


def test_consecutive_errors_over_the_limit_are_decided() -> None:
    measured = results(RATE, *[seen(error="down")] * 3)
    assert is_decided([RATE], measured)
    assert conclude([RATE], measured).phase is Phase.ERROR


def test_trailing_tolerated_failure_is_not_a_pass() -> None:
    tolerant = RATE.model_copy(update={"failure_limit": 1})
    measured = results(tolerant, seen(0.0), seen(0.3))
    assert not is_decided([tolerant], measured)
    assert conclude([tolerant], measured).phase is Phase.INCONCLUSIVE


def test_no_measurement_is_never_a_pass() -> None:
    assert conclude([RATE], []).phase is Phase.INCONCLUSIVE
    assert conclude([], []).phase is Phase.INCONCLUSIVE


def test_the_worst_check_decides() -> None:
    other = MetricCheck(name="queue-depth", query="q", failure_condition="result > 50")
    measured = [judge(RATE, seen(0.0), 1), judge(other, seen(80), 1)]
    verdict = conclude([RATE, other], measured)
    assert verdict.phase is Phase.FAILED
    assert verdict.reasons == ["queue-depth: 80 meets failure condition result > 50"]


def test_extra_rounds_are_bounded_by_the_limits() -> None:
    assert extra_rounds([RATE]) == 3
    assert extra_rounds([]) == 0


def test_verify_gates_carry_values_and_conditions() -> None:
    verdict = conclude([RATE], results(RATE, seen(0.0), seen(0.3)))
    [gate] = verify_gates(verdict)
    assert (gate.name, gate.passed, gate.value, gate.threshold) == (
        "verify_error_rate", False, "30.0 %", "failure: result > 0.05")


@pytest.mark.parametrize("source", list(StandardSource))
def test_standard_checks_use_the_policy_thresholds(source: StandardSource) -> None:
    checks = default_checks(source=source, convention=Convention.CLASSIC,
                            health_path="/health", rollback_error_rate=0.02,
                            rollback_avg_latency_s=3.0, min_requests=5, failure_limit=0,
                            inconclusive_limit=0, consecutive_error_limit=2)
    by_name = {c.name: c for c in checks}
    assert by_name["error-rate"].failure_condition == "result > 0.02"
    assert by_name["avg-latency"].failure_condition == "result > 3"
    assert by_name["health"].url == "{{endpoint}}/health"
    assert "[{{interval}}]" in by_name["error-rate"].query
    assert ">= 5" in by_name["error-rate"].query
