"""Verify stage: post-promotion analysis of the live revision, every measurement recorded."""

from __future__ import annotations

import logging

import httpx
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import PrefectHTTPStatusError

from runbook.adapters.prometheus import RouterMetrics
from runbook.analysis import CheckResult, Verdict, format_value
from runbook.infra import resolve
from runbook.models import Slot, TargetKind
from runbook.policy import Policy
from runbook.service import ServiceSpec
from runbook.settings_root import RunbookSettings
from runbook.targets import make_target
from runbook.verify import analyze, checks_for, series_for, target_for


def namespace_of(target: TargetKind, environment: str, settings: RunbookSettings) -> str:
    """``{{namespace}}``: the environment's Kubernetes namespace, or the environment's name
    where there is none (docker)."""
    return make_target(target, settings, environment).namespace(environment)


@task(name="analyze_release", cache_policy=NO_CACHE)
def analyze_release(
    target: TargetKind, spec: ServiceSpec, slot: Slot, endpoint: str, policy: Policy,
    settings: RunbookSettings,
) -> Verdict:
    """Measure the revision's checks for the analysis window; the verdict.

    Args:
        target: The deploy target (picks the standard checks' default source).
        spec: The service; its declared checks come from ``policy.analysis.metrics``.
        slot: The revision watched.
        endpoint: Its environment's traffic URL.
        policy: The effective policy (thresholds, limits, checks).
        settings: The run's settings: where Prometheus is, the cluster's namespaces.
    """
    logger = get_run_logger()

    def log(result: CheckResult) -> None:
        logger.info("%s", result.summary())

    checks = checks_for(spec, policy, target)
    watched = target_for(spec, slot, endpoint, namespace_of(target, slot.environment, settings))
    prometheus = RouterMetrics.of(resolve(settings.stack, slot.environment).prometheus)
    verdict = analyze(watched, checks, policy.analysis, prometheus,
                      settings.stack.scrape_interval_s, on_result=log,
                      traffic_timeout_s=policy.thresholds.rollback_avg_latency_s * 2,
                      series=series_for(spec, policy, target))
    log_series_wait(logger, verdict, policy.analysis.series_timeout_s)
    logger.info("verdict: %s %s", verdict.phase.value, "; ".join(verdict.reasons))
    try:
        publish_measurements(verdict, f"verify-{slot.service}-{slot.environment}")
    except (PrefectHTTPStatusError, httpx.HTTPError) as exc:
        # The table is a view of the verdict (the report carries every measurement): a
        # Prefect server answering 500 under load must not turn a verdict into a failure
        # (seen with 8 releases at once, benchmarks/concurrent_releases.py).
        logger.warning("verification table not published: %s", exc)
    return verdict


RunLogger = logging.Logger | logging.LoggerAdapter[logging.Logger]


def log_series_wait(logger: RunLogger, verdict: Verdict, timeout_s: float) -> None:
    if verdict.series_missing:
        logger.warning("the revision's request series was not scraped by Prometheus within "
                       "%.0f s (analysis.series_timeout_s): is its target discovered? "
                       "The window was measured anyway", timeout_s)
    elif verdict.series_wait_s is not None:
        logger.info("Prometheus scraped the revision's series after %.1f s; window started",
                    verdict.series_wait_s)


def publish_measurements(verdict: Verdict, key: str) -> None:
    """Every measurement as a row: check, time, query, value, condition, phase."""
    create_table_artifact(
        key=_artifact_key(key),
        table=[{
            "check": r.check, "t_s": r.elapsed_s, "query": r.query,
            "value": format_value(r.check, r.value), "condition": r.condition,
            "phase": r.phase.value, "reason": r.reason,
        } for r in verdict.results],
        description=f"verification: {verdict.phase.value}; " + "; ".join(verdict.reasons),
    )


def _artifact_key(key: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in key.lower())
    return "-".join(part for part in cleaned.split("-") if part)[:100]
