"""Observe stage: the run's stage durations and outcome go to the Pushgateway."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from runbook.adapters.pushgateway import Pushgateway
from runbook.infra import resolve
from runbook.models import RunReport
from runbook.run_metrics import run_sample
from runbook.settings import StackSettings
from runbook.store.layout import StateLayout
from tasks.retry import TRANSIENT_RETRIES


@task(name="push_run_metrics", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def push_run_metrics(report: RunReport, settings: StackSettings) -> None:
    """Push the final report's stage durations and outcome (Prometheus scrapes them), as
    the flow run's own group: a retry replaces it, never counts it twice."""
    sample = run_sample(report, flow_run.id)
    gateway = resolve(settings, report.environment).pushgateway
    marker = StateLayout(settings.state_dir).pushgateway_prune_marker
    Pushgateway.of(gateway).push_run(sample, prune_marker=marker)
    get_run_logger().info("pushed %d stage sample(s) of %s/%s (%s) to %s",
                          len(sample.stages), sample.service, sample.environment,
                          sample.outcome, gateway.label)

