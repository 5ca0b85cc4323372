"""Verify stage: post-promotion analysis of the live revision."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runbook.adapters.prometheus import RouterMetrics
from runbook.analysis import MeasurementResult, Verdict
from runbook.infra import resolve
from runbook.models import Slot, TargetKind
from runbook.policy import Policy
from runbook.service import ServiceSpec
from runbook.settings import StackSettings
from runbook.targets import make_target
from runbook.verify import AnalysisTarget, analyze


@task(name="analyze_release", cache_policy=NO_CACHE)
def analyze_release(
    target: TargetKind, spec: ServiceSpec, slot: Slot, endpoint: str, policy: Policy,
    settings: StackSettings,
) -> Verdict:
    logger = get_run_logger()
    proxy, server = make_target(target, settings, slot.environment).metrics_selector(slot)

    def log(result: MeasurementResult) -> None:
        logger.info("%s -> %s %s", result.measurement.summary(), result.phase.value,
                    "; ".join(result.reasons))

    watched = AnalysisTarget(endpoint, spec.health_path, proxy, server, spec.traffic.paths)
    metrics = RouterMetrics.of(resolve(settings, slot.environment).prometheus)
    verdict = analyze(watched, metrics, policy, settings.scrape_interval_s, on_result=log)
    logger.info("verdict: %s %s", verdict.phase.value, "; ".join(verdict.reasons))
    return verdict
