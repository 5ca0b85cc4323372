"""The verdict: pass, fail on each threshold, no data, Prometheus error."""

from runbook.analysis import Measurement, Phase, conclude, is_decided, judge
from runbook.policy import AnalysisSettings, Thresholds

THRESHOLDS = Thresholds()
SETTINGS = AnalysisSettings(min_requests=5)


def healthy(**changes: object) -> Measurement:
    values: dict[str, object] = dict(
        elapsed_s=5.0, requests=50.0, error_rate=0.0, avg_latency_s=0.05, health_ok=True
    )
    values.update(changes)
    return Measurement.model_validate(values)


def phase(m: Measurement) -> Phase:
    return judge(m, THRESHOLDS, SETTINGS).phase


def test_healthy_measurement_passes() -> None:
    assert phase(healthy()) is Phase.SUCCESSFUL


def test_error_rate_above_rollback_threshold_fails() -> None:
    result = judge(healthy(error_rate=0.051), THRESHOLDS, SETTINGS)
    assert result.phase is Phase.FAILED
    assert result.reasons == ["error rate 5.1% > 5.0%"]


def test_error_rate_at_threshold_passes() -> None:
    assert phase(healthy(error_rate=0.05)) is Phase.SUCCESSFUL


def test_average_latency_above_threshold_fails() -> None:
    result = judge(healthy(avg_latency_s=5.5), THRESHOLDS, SETTINGS)
    assert result.phase is Phase.FAILED
    assert "average response time 5.50 s > 5.00 s" in result.reasons


def test_failed_health_check_fails_even_with_good_metrics() -> None:
    result = judge(healthy(health_ok=False, health_detail="HTTP 503"), THRESHOLDS, SETTINGS)
    assert result.phase is Phase.FAILED
    assert result.reasons == ["health check failed: HTTP 503"]


def test_no_requests_is_inconclusive_not_a_pass() -> None:
    assert phase(healthy(requests=None, error_rate=None)) is Phase.INCONCLUSIVE
    assert phase(healthy(requests=2.0)) is Phase.INCONCLUSIVE


def test_missing_latency_is_inconclusive() -> None:
    assert phase(healthy(avg_latency_s=None)) is Phase.INCONCLUSIVE


def test_prometheus_error_is_an_error_measurement() -> None:
    m = healthy(requests=None, error_rate=None, avg_latency_s=None,
                source_error="prometheus unreachable")
    assert phase(m) is Phase.ERROR


def test_failure_wins_over_prometheus_error() -> None:
    m = healthy(health_ok=False, requests=None, error_rate=None, avg_latency_s=None,
                source_error="prometheus unreachable")
    assert phase(m) is Phase.FAILED


def test_thresholds_come_from_the_policy() -> None:
    strict = Thresholds(rollback_error_rate=0.01)
    assert judge(healthy(error_rate=0.02), strict, SETTINGS).phase is Phase.FAILED


def results(*measurements: Measurement) -> list:
    return [judge(m, THRESHOLDS, SETTINGS) for m in measurements]


def test_run_of_good_measurements_is_successful() -> None:
    verdict = conclude(results(healthy(), healthy()), SETTINGS)
    assert verdict.phase is Phase.SUCCESSFUL
    assert verdict.keep


def test_one_failure_fails_the_run_by_default() -> None:
    verdict = conclude(results(healthy(), healthy(error_rate=0.3)), SETTINGS)
    assert verdict.phase is Phase.FAILED
    assert not verdict.keep
    assert verdict.reasons == ["error rate 30.0% > 5.0%"]


def test_failure_limit_tolerates_that_many_failures() -> None:
    tolerant = AnalysisSettings(failure_limit=1)
    rs = [judge(m, THRESHOLDS, tolerant) for m in (healthy(error_rate=0.3), healthy())]
    assert conclude(rs, tolerant).phase is Phase.SUCCESSFUL


def test_no_measurement_at_all_is_not_a_pass() -> None:
    verdict = conclude([], SETTINGS)
    assert verdict.phase is Phase.INCONCLUSIVE
    assert not verdict.keep


def test_only_missing_data_is_inconclusive() -> None:
    verdict = conclude(results(healthy(requests=None, error_rate=None)), SETTINGS)
    assert verdict.phase is Phase.INCONCLUSIVE


def test_consecutive_errors_beyond_limit_is_error() -> None:
    down = healthy(requests=None, error_rate=None, avg_latency_s=None, source_error="down")
    assert conclude(results(healthy(), down, down), SETTINGS).phase is Phase.SUCCESSFUL
    assert conclude(results(healthy(), down, down, down), SETTINGS).phase is Phase.ERROR


def test_decided_early_only_when_success_is_impossible() -> None:
    assert not is_decided(results(healthy()), SETTINGS)
    assert is_decided(results(healthy(), healthy(error_rate=0.2)), SETTINGS)
    assert is_decided(results(healthy(requests=0.0)), SETTINGS)


def test_slow_verification_traffic_fails_even_when_router_average_lags() -> None:
    result = judge(healthy(avg_latency_s=0.2, client_avg_latency_s=6.0), THRESHOLDS, SETTINGS)
    assert result.phase is Phase.FAILED
    assert result.reasons == ["verification traffic average response time 6.00 s > 5.00 s"]


def test_no_verification_traffic_latency_is_not_missing_data() -> None:
    assert phase(healthy(client_avg_latency_s=None)) is Phase.SUCCESSFUL


def test_summary_is_one_readable_line() -> None:
    line = healthy(requests=48.79, error_rate=0.1008).summary()
    assert "requests=49" in line and "errors=10.1%" in line and "\n" not in line
