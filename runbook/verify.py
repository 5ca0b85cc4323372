"""Post-promotion analysis: watch the new revision for a window, measure, and decide.

The I/O half of verification (traffic, health probes, Prometheus queries); the decision is
:mod:`runbook.analysis`, pure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import httpx

from runbook.adapters.http import probe
from runbook.adapters.prometheus import RouterMetrics
from runbook.analysis import Measurement, MeasurementResult, Verdict, conclude, is_decided, judge
from runbook.errors import TransientError
from runbook.load import TrafficDriver
from runbook.policy import Policy


class AnalysisTarget:
    """What is being watched: where its traffic goes and how Prometheus labels it."""

    def __init__(self, endpoint: str, health_path: str, proxy: str, server: str,
                 paths: list[str]) -> None:
        self.endpoint = endpoint
        self.health_path = health_path
        self.proxy = proxy
        self.server = server
        self.paths = paths


def analyze(
    target: AnalysisTarget,
    metrics: RouterMetrics,
    policy: Policy,
    scrape_interval_s: float,
    on_result: Callable[[MeasurementResult], None] = lambda _: None,
) -> Verdict:
    """Measure every interval until the window ends or the verdict can only be a failure."""
    settings = policy.analysis
    results: list[MeasurementResult] = []
    timeout = policy.deploy.health_request_timeout_s
    with TrafficDriver(target.endpoint, target.paths, settings.traffic_rps,
                       timeout_s=policy.thresholds.rollback_avg_latency_s * 2) as traffic, \
            httpx.Client() as http:
        started = time.monotonic()
        next_at = started + max(settings.interval_s, settings.initial_delay_s)
        previous = started
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            now = time.monotonic()
            elapsed = now - started
            measurement = measure(target, metrics, http, elapsed, scrape_interval_s, timeout)
            measurement.client_avg_latency_s = traffic.result.average_since(previous)
            previous = now
            result = judge(measurement, policy.thresholds, settings)
            results.append(result)
            on_result(result)
            if is_decided(results, settings) or elapsed + settings.interval_s > settings.window_s:
                break
            next_at += settings.interval_s
    return conclude(results, settings)


def measure(
    target: AnalysisTarget,
    metrics: RouterMetrics,
    http: httpx.Client,
    elapsed_s: float,
    scrape_interval_s: float,
    health_timeout_s: float,
) -> Measurement:
    health = probe(http, target.endpoint + target.health_path, health_timeout_s)
    # The range covers the whole analysis so far, but never fewer than three scrapes:
    # increase() needs two samples and one may be in flight.
    range_s = max(math.ceil(elapsed_s), math.ceil(3 * scrape_interval_s))
    measurement = Measurement(
        elapsed_s=round(elapsed_s, 1), health_ok=health.ok, health_detail=health.detail
    )
    try:
        requests = metrics.requests(target.proxy, target.server, range_s)
        errors = metrics.errors(target.proxy, target.server, range_s)
        latency = metrics.avg_response_time_s(target.proxy, target.server)
    except TransientError as exc:
        measurement.source_error = str(exc)
        return measurement
    measurement.requests = requests
    measurement.avg_latency_s = latency
    if requests and errors is not None:
        measurement.error_rate = min(1.0, errors / requests)
    return measurement
