"""Guard tasks: start the guard of a released revision, watch it, end it."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runbook import guard as guards
from runbook.adapters.prometheus import RouterMetrics
from runbook.analysis import CheckResult, Verdict
from runbook.guard import GuardRecord, GuardStep, GuardStore
from runbook.infra import resolve
from runbook.settings_root import RunbookSettings
from runbook.targets import make_target
from runbook.verify import Schedule, analyze, checks_for, series_for, target_for
from tasks.retry import TRANSIENT_RETRIES
from tasks.verify import namespace_of, publish_measurements


@task(name="start_guard", cache_policy=NO_CACHE)
def start_guard(record: GuardRecord, settings: RunbookSettings) -> GuardRecord:
    """Write the durable guard record (replacing an older release's) and start the guard
    flow in its own process; returns the record with the guard's pid."""
    store = GuardStore(settings.stack.state_dir)
    store.write(record)
    record.pid = guards.launch(record, store)
    store.write(record)
    get_run_logger().info("guard of %s/%s %s holds until %s (pid %d)", record.service,
                          record.environment, record.revision, record.until.isoformat(),
                          record.pid)
    return record


@task(name="claim_guard", cache_policy=NO_CACHE)
def claim_guard(service: str, environment: str, revision: str,
                settings: RunbookSettings) -> GuardRecord | None:
    """The record of ``revision``'s guard, now owned by this process; None if superseded."""
    store = GuardStore(settings.stack.state_dir)
    return store.claim(service, environment, revision, os.getpid())


@task(name="guard_step", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def guard_step(record: GuardRecord, settings: RunbookSettings) -> GuardStep:
    """What the guard does next, from the record on disk and what is live now."""
    return _step(record, settings)


def _step(record: GuardRecord, settings: RunbookSettings) -> GuardStep:
    current = GuardStore(settings.stack.state_dir).read(record.service, record.environment)
    live = make_target(record.target, settings).live(record.service, record.environment)
    return guards.next_step(current, record.revision, live.revision if live else None,
                            datetime.now(UTC))


@task(name="watch_release", cache_policy=NO_CACHE)
def watch_release(record: GuardRecord, settings: RunbookSettings) -> Verdict:
    """The same checks as the analysis window, until the guard expires, a check is decided
    or a newer release supersedes this one."""
    logger = get_run_logger()
    remaining = (record.until - datetime.now(UTC)).total_seconds()
    analysis = record.policy.analysis
    schedule = Schedule(window_s=max(0.0, remaining), initial_delay_s=0.0,
                        default_interval_s=analysis.interval_s)

    def log(result: CheckResult) -> None:
        logger.info("%s", result.summary())

    def superseded() -> str | None:
        step = _step(record, settings)
        return None if step is GuardStep.WATCH else step.value

    watched = target_for(record.spec, record.slot, record.endpoint,
                         namespace_of(record.target, record.environment, settings))
    verdict = analyze(watched, checks_for(record.spec, record.policy, record.target), analysis,
                      RouterMetrics.of(resolve(settings.stack, record.environment).prometheus),
                      settings.stack.scrape_interval_s,
                      schedule=schedule, on_result=log, stop_reason=superseded,
                      traffic_timeout_s=record.policy.thresholds.rollback_avg_latency_s * 2,
                      series=series_for(record.spec, record.policy, record.target))
    logger.info("guard verdict: %s %s", verdict.phase.value, "; ".join(verdict.reasons))
    publish_measurements(verdict, f"guard-{record.service}-{record.environment}")
    return verdict


@task(name="end_guard", cache_policy=NO_CACHE)
def end_guard(record: GuardRecord, settings: RunbookSettings) -> None:
    """Remove the record if it is still this revision's."""
    store = GuardStore(settings.stack.state_dir)
    store.remove(record.service, record.environment, record.revision)
