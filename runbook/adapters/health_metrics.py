"""Daily pipeline health as Pushgateway gauges (one group, replaced on every push)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from runbook.adapters.pushgateway import push
from runbook.ops.health import Dora, PipelineHealth

JOB = "runbook_health"
TIMEOUT_S = 5.0
SUCCESS = "runbook_health_success_ratio"
AVG_SECONDS = "runbook_health_avg_duration_seconds"
RUNS = "runbook_health_runs"
BREACHES = "runbook_health_breaches"


def push_health(url: str, health: PipelineHealth, timeout_s: float = TIMEOUT_S) -> None:
    """Replace the health group with this report's rates, averages, counts and breaches.
    A window without runs has no rate sample at all: absent, not zero."""
    registry = CollectorRegistry()
    labels = ["kind", "window_days"]
    success = Gauge(SUCCESS, "Success ratio of runs in the window.", labels, registry=registry)
    average = Gauge(AVG_SECONDS, "Average duration of runs in the window.", labels,
                    registry=registry)
    runs = Gauge(RUNS, "Finished runs in the window.", labels, registry=registry)
    Gauge(BREACHES, "Runbook health targets breached.", registry=registry).set(
        len(health.breaches))
    for window in health.windows:
        key = (window.kind.value, str(window.days))
        runs.labels(*key).set(window.runs)
        if window.success_rate is not None and window.avg_duration_s is not None:
            success.labels(*key).set(window.success_rate)
            average.labels(*key).set(window.avg_duration_s)
    push(url, JOB, registry, timeout_s)


DORA_JOB = "runbook_dora"
DORA_DEPLOYS_PER_DAY = "runbook_dora_deployment_frequency_per_day"
DORA_LEAD_TIME = "runbook_dora_lead_time_seconds"
DORA_FAILURE_RATE = "runbook_dora_change_failure_ratio"
DORA_RESTORE = "runbook_dora_time_to_restore_seconds"


def push_dora(url: str, metrics: list[Dora], timeout_s: float = TIMEOUT_S) -> None:
    """Replace the DORA group: the four keys per service and environment; a key without
    data has no sample."""
    registry = CollectorRegistry()
    labels = ["service", "environment", "window_days"]
    frequency = Gauge(DORA_DEPLOYS_PER_DAY, "Successful deploys per day.", labels,
                      registry=registry)
    lead = Gauge(DORA_LEAD_TIME, "Median lead time for changes.", labels, registry=registry)
    failure = Gauge(DORA_FAILURE_RATE, "Change failure rate.", labels, registry=registry)
    restore = Gauge(DORA_RESTORE, "Median time to restore service.", labels,
                    registry=registry)
    for m in metrics:
        key = (m.service, m.environment, str(m.days))
        frequency.labels(*key).set(m.deployment_frequency_per_day)
        for gauge, value in ((lead, m.lead_time_s), (failure, m.change_failure_rate),
                             (restore, m.time_to_restore_s)):
            if value is not None:
                gauge.labels(*key).set(value)
    push(url, DORA_JOB, registry, timeout_s)
