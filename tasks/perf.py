"""Perf stage: Locust against the preview slot only, resources sampled meanwhile, the report
stored for baselines and trends, shown as a table and a chart, degradation announced."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from runbook.models import Gate, PerfReport, Slot, TargetKind
from runbook.perf.baseline import BaselineStore, StoredReport
from runbook.perf.chart import latency_chart
from runbook.perf.degradation import Degradation
from runbook.perf.locustfile import resolve_locustfile
from runbook.perf.markdown import perf_markdown
from runbook.perf.progress import ConsoleProgress
from runbook.perf.runner import LocustJob, resolve_workers, run_locust
from runbook.perf.stats import LoadProgress
from runbook.policy import PerfSettings
from runbook.service import Service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook.store import store_for
from runbook.store.layout import StateLayout
from runbook.targets import make_target

DEGRADED_EVENT = "runbook.perf.degraded"
PROGRESS_LOG_INTERVAL_S = 5.0


def _store(settings: StackSettings) -> BaselineStore:
    return BaselineStore(store_for(settings))


KEPT_RUN_DIRS = 20
"""Locust working directories (CSV stats, the generated locustfile) kept per service and
environment; the reports themselves are in the state store."""


def _run_dir(settings: StackSettings, slot: Slot) -> Path:
    """A fresh working directory for this load test; the oldest beyond ``KEPT_RUN_DIRS``
    are removed, so the state directory does not grow run after run."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs = StateLayout(settings.state_dir).perf_runs(slot.service, slot.environment)
    if runs.is_dir():
        for old in sorted(runs.iterdir())[:-(KEPT_RUN_DIRS - 1)]:
            shutil.rmtree(old, ignore_errors=True)
    return runs / f"{stamp}_{slot.revision}"


class _ProgressSinks:
    """Each live reading goes to the Prefect progress artifact, the terminal and the log."""

    def __init__(self, artifact_id: UUID, console: ConsoleProgress) -> None:
        self.artifact_id = artifact_id
        self.console = console
        self.logger = get_run_logger()
        self._last_log = 0.0

    def __call__(self, progress: LoadProgress) -> None:
        summary = (f"{progress.users} users, {progress.requests} requests, "
                   f"{progress.failures} failed, {progress.current_rps:.1f} rps")
        update_progress_artifact(self.artifact_id, round(progress.fraction * 100, 1),
                                 description=summary)
        self.console(progress)
        if time.monotonic() - self._last_log >= PROGRESS_LOG_INTERVAL_S:
            self._last_log = time.monotonic()
            self.logger.info("load %3.0f%%: %s", progress.fraction * 100, summary)


@task(name="load_test_preview", cache_policy=NO_CACHE)
def load_test_preview(
    target: TargetKind, candidate: Slot, preview_url: str, service: Service,
    perf: PerfSettings, settings: RunbookSettings,
) -> PerfReport:
    """Locust against ``preview_url`` (the candidate only, never live traffic) while the
    candidate's CPU and memory are sampled."""
    workdir = _run_dir(settings.stack, candidate)
    workdir.mkdir(parents=True, exist_ok=True)
    locustfile = resolve_locustfile(service.directory, perf.locustfile,
                                    service.spec.traffic.paths, perf.request_timeout_s, workdir,
                                    perf.think_time_s)
    job = LocustJob(host=preview_url, locustfile=locustfile, users=perf.users,
                    spawn_rate=perf.spawn_rate, duration_s=perf.duration_s, workdir=workdir,
                    workers=resolve_workers(perf.workers, perf.users, perf.think_time_s,
                                            perf.required_rps, perf.locustfile is not None),
                    shutdown_grace_s=perf.shutdown_grace_s,
                    stop_timeout_s=perf.request_timeout_s)
    artifact_id = create_progress_artifact(
        0.0, key=f"perf-progress-{candidate.service}-{candidate.environment}",
        description=f"load test of {candidate.revision} at {preview_url}",
    )
    sampler = make_target(target, settings, candidate.environment).resource_sampler(candidate)
    with sampler, ConsoleProgress(f"perf {candidate.service}") as console:
        report = run_locust(job, _ProgressSinks(artifact_id, console))
    report = report.model_copy(update={"resources": sampler.usage()})
    get_run_logger().info(
        "load test: %d requests, %.1f rps, avg %s s, p95 %s s, error rate %s; stats in %s",
        report.requests, report.rps, report.avg_latency_s, report.p95_latency_s,
        report.error_rate, workdir)
    return report


@task(name="read_perf_baseline", cache_policy=NO_CACHE)
def read_perf_baseline(service: str, environment: str,
                       settings: StackSettings) -> StoredReport | None:
    """The last released revision's report in this environment, if any."""
    return _store(settings).baseline(service, environment)


@task(name="record_perf_report", cache_policy=NO_CACHE)
def record_perf_report(service: str, environment: str, revision: str, report: PerfReport,
                       settings: StackSettings) -> str:
    """Keep the report (trends; the baseline once the revision is released); returns its
    key in the state store."""
    return _store(settings).save(service, environment, revision, report)


@task(name="mark_perf_baseline", cache_policy=NO_CACHE)
def mark_perf_baseline(service: str, environment: str, revision: str,
                       settings: StackSettings) -> bool:
    """The released revision's report becomes the baseline of the next releases."""
    marked = _store(settings).mark_released(service, environment, revision)
    if not marked:
        get_run_logger().warning("%s has no perf report in %s; baseline unchanged",
                                 revision, environment)
    return marked


@task(name="publish_perf_results", cache_policy=NO_CACHE)
def publish_perf_results(
    service: str, environment: str, revision: str, report: PerfReport,
    baseline: StoredReport | None, degradation: Degradation, gates: list[Gate],
    settings: StackSettings,
) -> str:
    """The latency chart (PNG, kept with the reports) and the markdown artifact; returns the
    chart's path."""
    chart = latency_chart(
        report, baseline.report if baseline else None,
        StateLayout(settings.state_dir).perf_chart(service, environment, revision),
        title=f"{service} {environment}: latency under load",
        current_label=f"{revision[:12]} (this release)",
        baseline_label=f"{baseline.revision[:12]} (baseline)" if baseline else "baseline",
    )
    create_markdown_artifact(
        key=f"perf-{service}-{environment}",
        markdown=perf_markdown(f"perf: {service} {environment} {revision}", report,
                               degradation, gates, chart),
        description=f"load test of {revision} against the baseline",
    )
    return str(chart)


@task(name="emit_perf_degraded", cache_policy=NO_CACHE)
def emit_perf_degraded(service: str, environment: str, revision: str,
                       degradation: Degradation) -> None:
    """The critical 'performance degradation' event (automations and alert routing act on
    it)."""
    emit_event(
        event=DEGRADED_EVENT,
        resource={"prefect.resource.id": f"runbook.service.{service}.{environment}",
                  "prefect.resource.name": f"{service} {environment}"},
        payload={"severity": "critical", "revision": revision,
                 "baseline_revision": degradation.baseline_revision,
                 "reasons": degradation.reasons,
                 "comparisons": [c.model_dump() for c in degradation.comparisons]},
    )
    get_run_logger().error("performance degraded: %s", "; ".join(degradation.reasons))
