"""Post-promotion analysis: watch one revision, measure every check at its interval, decide.

The I/O half of verification (the schedule, traffic, the providers); the decision is
:mod:`runbook.analysis`, pure. The same loop runs inside the pipeline (the analysis window)
and in the guard after it (:mod:`flows.guard`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel

from runbook.adapters.prometheus import RouterMetrics, escape
from runbook.analysis import (
    CheckResult,
    Verdict,
    conclude,
    extra_rounds,
    is_decided,
    judge,
    pending,
)
from runbook.checks import templates
from runbook.checks.model import MetricCheck, StandardSource
from runbook.checks.providers import Providers
from runbook.checks.standard import TRAFFIC_LATENCY, Convention, default_checks, series_query
from runbook.errors import RunbookError
from runbook.load import TrafficDriver
from runbook.models import Slot, TargetKind
from runbook.policy import AnalysisSettings, Policy
from runbook.service import ServiceSpec

TARGET_SOURCE = {TargetKind.DOCKER: StandardSource.ROUTER,
                 TargetKind.KUBERNETES: StandardSource.APP}
"""The standard checks' source when the policy names none."""


class AnalysisTarget(BaseModel):
    """What is watched: where its traffic goes and the values its templates are filled with."""

    endpoint: str
    paths: list[str]
    variables: dict[str, str]
    """service, environment, revision, color, namespace, endpoint."""

    def filled(self, interval: str) -> dict[str, str]:
        """Every template variable, ``interval`` (a Prometheus range) included."""
        return {**self.variables, "interval": interval}


def target_for(spec: ServiceSpec, slot: Slot, endpoint: str, namespace: str) -> AnalysisTarget:
    return AnalysisTarget(endpoint=endpoint, paths=spec.traffic.paths, variables={
        "service": slot.service, "environment": slot.environment, "revision": slot.revision,
        "color": slot.color, "namespace": namespace, "endpoint": endpoint,
    })


def _source(policy: Policy, target: TargetKind) -> StandardSource:
    return policy.analysis.provider or TARGET_SOURCE[TargetKind(target)]


def _convention(spec: ServiceSpec) -> Convention:
    return spec.metrics.convention if spec.metrics else Convention.CLASSIC


def series_for(spec: ServiceSpec, policy: Policy, target: TargetKind) -> str:
    """The template whose value says the standard source has scraped the revision."""
    return series_query(_source(policy, target), _convention(spec))


def checks_for(spec: ServiceSpec, policy: Policy, target: TargetKind) -> list[MetricCheck]:
    """The standard checks of the policy's source, then the declared ones; a declared check
    named like a standard one (``error-rate``) replaces it."""
    analysis = policy.analysis
    standard = default_checks(
        source=_source(policy, target), convention=_convention(spec),
        health_path=spec.health_path,
        rollback_error_rate=policy.thresholds.rollback_error_rate,
        rollback_avg_latency_s=policy.thresholds.rollback_avg_latency_s,
        min_requests=analysis.min_requests, failure_limit=analysis.failure_limit,
        inconclusive_limit=analysis.inconclusive_limit,
        consecutive_error_limit=analysis.consecutive_error_limit,
    )
    if analysis.traffic_rps == 0:  # no verification traffic: nothing to time
        standard = [c for c in standard if c.name != TRAFFIC_LATENCY]
    declared = {check.name for check in analysis.metrics}
    return [c for c in standard if c.name not in declared] + list(analysis.metrics)


def range_for(interval_s: float, scrape_interval_s: float) -> str:
    """``{{interval}}``: the check's interval, but never fewer than 2.5 scrapes, because
    increase() needs two samples in the range and one may be in flight."""
    return f"{max(math.ceil(interval_s), math.ceil(2.5 * scrape_interval_s))}s"


class Schedule(BaseModel):
    """How long to watch and when to stop early."""

    window_s: float
    initial_delay_s: float
    default_interval_s: float


def analyze(
    target: AnalysisTarget,
    checks: list[MetricCheck],
    settings: AnalysisSettings,
    prometheus: RouterMetrics,
    scrape_interval_s: float,
    schedule: Schedule | None = None,
    on_result: Callable[[CheckResult], None] = lambda _: None,
    stop_reason: Callable[[], str | None] = lambda: None,
    traffic_timeout_s: float = 10.0,
    series: str | None = None,
) -> Verdict:
    """Measure every check at its interval until the window ends or a check is decided;
    past the window, checks that did not end on a success are measured again (bounded).

    ``series`` (from :func:`series_for`): the window starts once it has a value, i.e. once
    Prometheus scrapes the revision (at most ``settings.series_timeout_s`` later), with the
    verification traffic already running, so no measurement reads a target that is still
    being discovered."""
    schedule = schedule or Schedule(window_s=settings.window_s,
                                    initial_delay_s=settings.initial_delay_s,
                                    default_interval_s=settings.interval_s)
    with TrafficDriver(target.endpoint, target.paths, settings.traffic_rps,
                       timeout_s=traffic_timeout_s) as traffic, httpx.Client() as http:
        started, wait = time.monotonic(), None
        if series is not None:
            query = templates.render(
                series, target.filled(range_for(settings.interval_s, scrape_interval_s)),
                escape)
            wait = wait_for_series(prometheus, query, settings.series_timeout_s,
                                   poll_s=scrape_interval_s / 2, stop_reason=stop_reason)
        run = _Run(target, checks, schedule, scrape_interval_s,
                   Providers(prometheus, http, traffic.latency_since), on_result, started)
        run.window(stop_reason)
        if not is_decided(checks, run.results) and stop_reason() is None:
            run.extra()
    verdict = conclude(checks, run.results)
    if wait is not None and wait.error is None:  # an error: the measurements report it
        verdict = verdict.model_copy(update={"series_wait_s": wait.waited_s,
                                             "series_missing": not wait.seen})
    return verdict


class SeriesWait(BaseModel):
    waited_s: float
    seen: bool
    error: str | None = None


def wait_for_series(prometheus: RouterMetrics, query: str, timeout_s: float, poll_s: float,
                    stop_reason: Callable[[], str | None] = lambda: None) -> SeriesWait:
    """Poll ``query`` until it has a positive value, the deadline passes or the analysis
    is stopped. A Prometheus that does not answer ends the wait at once: the measurements
    report it, under their own error limits, instead of this wait hiding it."""
    started = time.monotonic()
    deadline = started + timeout_s

    def ended(seen: bool, error: str | None = None) -> SeriesWait:
        return SeriesWait(waited_s=round(time.monotonic() - started, 1), seen=seen,
                          error=error)

    while True:
        try:
            value = prometheus.single_value(query)
        except RunbookError as exc:
            return ended(False, str(exc))
        if value is not None and value > 0:
            return ended(True)
        now = time.monotonic()
        if now >= deadline or stop_reason() is not None:
            return ended(False)
        time.sleep(min(poll_s, deadline - now))


class _Run:
    def __init__(self, target: AnalysisTarget, checks: list[MetricCheck], schedule: Schedule,
                 scrape_interval_s: float, providers: Providers,
                 on_result: Callable[[CheckResult], None],
                 started: float | None = None) -> None:
        self.target = target
        self.checks = checks
        self.schedule = schedule
        self.scrape_interval_s = scrape_interval_s
        self.providers = providers
        self.on_result = on_result
        self.results: list[CheckResult] = []
        # The window (and its initial delay) starts now, once the series is there; each
        # measurement's elapsed time counts from the analysis' start, wait included, so a
        # reader can place it after the verify stage's start.
        self.window_start = time.monotonic()
        self.started = self.window_start if started is None else started
        first = self.window_start + schedule.initial_delay_s
        self.next_at = {c.name: max(first, self.window_start + self.interval(c))
                        for c in checks}
        self.last_at = dict.fromkeys(self.next_at, self.window_start)

    def interval(self, check: MetricCheck) -> float:
        return check.interval_s or self.schedule.default_interval_s

    def window(self, stop_reason: Callable[[], str | None]) -> None:
        end = self.window_start + self.schedule.window_s
        while self.checks:
            at = min(self.next_at.values())
            if at > end:
                return
            time.sleep(max(0.0, at - time.monotonic()))
            if stop_reason() is not None:
                return
            for check in [c for c in self.checks if self.next_at[c.name] <= at + 0.05]:
                self.measure(check)
                self.next_at[check.name] += self.interval(check)
            if is_decided(self.checks, self.results):
                return

    def extra(self) -> None:
        for _ in range(extra_rounds(self.checks)):
            waiting = pending(self.checks, self.results)
            if not waiting:
                return
            time.sleep(max(self.interval(c) for c in waiting))
            for check in waiting:
                self.measure(check)
            if is_decided(self.checks, self.results):
                return

    def measure(self, check: MetricCheck) -> None:
        now, measured_at = time.monotonic(), datetime.now(UTC)
        variables = self.target.filled(range_for(self.interval(check),
                                                 self.scrape_interval_s))
        observation = self.providers.observe(check, variables, self.last_at[check.name])
        self.last_at[check.name] = now
        result = judge(check, observation, now - self.started, measured_at)
        self.results.append(result)
        self.on_result(result)
