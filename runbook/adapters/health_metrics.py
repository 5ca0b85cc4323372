"""Daily pipeline health as Pushgateway gauges (one group, replaced on every push)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from runbook.adapters.pushgateway import push
from runbook.ops.health import PipelineHealth

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
