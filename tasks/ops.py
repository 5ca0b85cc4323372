"""Tasks of the scheduled operations: thin wrappers over ``runbook.ops``, the secret
rotation and the adapters (Prefect history, Pushgateway, registry, stored scans)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from runbook.adapters.app_metrics import day_metrics, discover_routes
from runbook.adapters.base_images import pull_as
from runbook.adapters.git_history import commits_touching
from runbook.adapters.health_metrics import push_dora, push_health
from runbook.adapters.prefect_runs import finished_task_runs, pipeline_runs
from runbook.adapters.registry import Registry
from runbook.adapters.review_record import last_review, record_review
from runbook.adapters.scan_history import stored_scans
from runbook.alerts.notifier import Notifier
from runbook.incidents import Category, Incident
from runbook.names import BUILD_TAG
from runbook.ops.app_metrics import RouteMetrics
from runbook.ops.base_image import BaseImageStatus, ResolvedImage, base_image_status
from runbook.ops.chart import dora_chart, trend_chart
from runbook.ops.cleanup import CleanupPlan, TagInfo, plan_cleanup
from runbook.ops.deploys import PipelineRun
from runbook.ops.dora_trend import dora_by_day
from runbook.ops.health import (
    DeployEvent,
    Dora,
    PipelineHealth,
    Restore,
    RunKind,
    deploy_events,
    deploy_run_records,
    dora,
    pipeline_health,
)
from runbook.ops.policy import (
    CleanupSettings,
    HealthTargets,
    ReviewSettings,
    RotationSettings,
    ScanSla,
)
from runbook.ops.review import RunbookReview, runbook_review
from runbook.ops.rotation import SecretStatus
from runbook.ops.scan_review import ScanReview, review
from runbook.ops.trend import daily_trend
from runbook.scan import suppressions
from runbook.secrets.rotate import rotate
from runbook.secrets.store import SecretStore
from runbook.service import load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook.store import StateStore, store_for
from runbook.store.layout import StateLayout
from runbook.targets import make_target
from tasks.notify import open_notifier
from tasks.retry import TRANSIENT_RETRIES


@task(name="pipeline_runs", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def read_pipeline_runs(flow_names: list[str], days: int) -> list[PipelineRun]:
    """The pipeline runs of the last ``days`` with their report records (Prefect)."""
    return pipeline_runs(flow_names, datetime.now(UTC) - timedelta(days=days))


@task(name="pipeline_health", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def compute_pipeline_health(targets: HealthTargets, flow_names: list[str],
                            runs: list[PipelineRun]) -> PipelineHealth:
    """Rates and averages against the targets: builds from Prefect's task runs tagged
    ``runbook:build``, deploys from the runs' reports (the one deploy definition,
    runbook/ops/deploys.py, whatever the strategy)."""
    now = datetime.now(UTC)
    since = now - timedelta(days=max(targets.windows_days))
    builds = finished_task_runs({BUILD_TAG: RunKind.BUILD}, flow_names, since)
    return pipeline_health([*builds, *deploy_run_records(runs)], now, targets)


@task(name="health_trend_chart", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def health_trend_chart(targets: HealthTargets, flow_names: list[str],
                       runs: list[PipelineRun], settings: StackSettings) -> Path:
    """The last ``trend_days`` of builds and deploys, per day, as a PNG under the state
    directory (``ops/health-trend-<date>.png``)."""
    now = datetime.now(UTC)
    since = datetime.combine(now.date() - timedelta(days=targets.trend_days - 1),
                             datetime.min.time(), tzinfo=UTC)
    builds = finished_task_runs({BUILD_TAG: RunKind.BUILD}, flow_names, since)
    trend = daily_trend([*builds, *deploy_run_records(runs)], now, targets.trend_days)
    path = StateLayout(settings.state_dir).ops_chart("health-trend", now.date())
    return trend_chart(trend, path, f"builds and deploys, last {targets.trend_days} days")


@task(name="compute_dora", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def compute_dora(targets: HealthTargets, runs: list[PipelineRun], incidents: list[Incident],
                 git_timeout_s: float) -> tuple[list[Dora], list[DeployEvent]]:
    """The four keys per service and environment: deploys from the runs' reports, lead
    time from the commit time of the delivered source (git log of the run's service
    directory), time to restore from the resolved incidents."""
    commits: dict[str, list[datetime]] = {}
    for directory in {run.service_dir for run in runs if run.service_dir}:
        found = commits_touching(Path(directory), ["."], None, git_timeout_s)
        commits[directory] = [c.committed_at for c in found or []]
    events = deploy_events(runs, commits)
    restores = [Restore(service=i.service, environment=i.environment, failed_at=i.opened_at,
                        restored_at=i.resolved_at)
                for i in incidents if i.resolved_at is not None and i.category in RESTORED]
    return dora(events, datetime.now(UTC), targets.dora_days, restores), events


@task(name="dora_trend_chart", cache_policy=NO_CACHE)
def dora_trend_chart(targets: HealthTargets, events: list[DeployEvent],
                     settings: StackSettings) -> Path:
    now = datetime.now(UTC)
    path = StateLayout(settings.state_dir).ops_chart("dora-trend", now.date())
    return dora_chart(dora_by_day(events, now, targets.trend_days), path,
                      f"DORA, last {targets.trend_days} days")


@task(name="push_dora_metrics", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def push_dora_metrics(metrics: list[Dora], settings: StackSettings) -> None:
    push_dora(settings.pushgateway_url, metrics)


RESTORED = frozenset({Category.PRODUCTION_DOWN, Category.DEPLOYMENT_FAILURE,
                      Category.DEGRADED_PERFORMANCE})
"""Incidents whose resolution restores service (the time to restore is measured on them)."""


@task(name="application_metrics", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def application_metrics(targets: HealthTargets, settings: StackSettings,
                        routes: list[str] | None = None) -> list[RouteMetrics]:
    """Error rate and average response time per route over ``app_window_s``; the routes
    are the ones Prometheus saw in that window unless given."""
    url = settings.prometheus_url
    found = routes if routes is not None else discover_routes(url, targets.app_window_s)
    return day_metrics(url, found, targets.app_window_s)


@task(name="push_health_metrics", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def push_health_metrics(health: PipelineHealth, settings: StackSettings) -> None:
    push_health(settings.pushgateway_url, health)


@task(name="publish_ops_report", cache_policy=NO_CACHE)
def publish_ops_report(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(key=key, markdown=markdown, description=description[:500])


@task(name="review_scans", cache_policy=NO_CACHE)
def review_scans(service: str, settings: StackSettings, sla: ScanSla,
                 service_dir: str | None = None) -> ScanReview:
    """This week's stored findings of ``service`` against last week's."""
    declared = suppressions.load(Path(service_dir)) if service_dir else []
    return review(service, stored_scans(settings.state_dir, service), declared,
                  datetime.now(UTC), sla)


@task(name="plan_registry_cleanup", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def plan_registry_cleanup(repository: str, protected: list[str], cleanup: CleanupSettings,
                          settings: StackSettings) -> CleanupPlan:
    """What to delete from one repository of the local registry."""
    registry = Registry(settings.registry)
    tags = []
    for tag in registry.tags(repository):
        info = registry.image_info(repository, tag)
        if info is not None:
            digest, created, blobs = info
            tags.append(TagInfo(tag=tag, digest=digest, created=created, blobs=blobs))
    return plan_cleanup(repository, tags, set(protected), cleanup.keep_last)


@task(name="apply_registry_cleanup", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def apply_registry_cleanup(plan: CleanupPlan, settings: StackSettings) -> int:
    """Delete the planned manifests (idempotent: gone already counts as done)."""
    registry = Registry(settings.registry)
    for digest in plan.delete_digests:
        registry.delete_manifest(plan.repository, digest)
    get_run_logger().info("%s: deleted %d manifest(s), %d tag(s); %d bytes to reclaim",
                          plan.repository, len(plan.delete_digests), len(plan.delete_tags),
                          plan.bytes_freed)
    return len(plan.delete_digests)


@task(name="deployed_revisions", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def deployed_revisions(service: str, environments: list[str], target: str,
                       settings: RunbookSettings) -> list[str]:
    """Revisions live or kept as standby in any environment: never cleaned up."""
    deploy_target = make_target(target, settings)
    slots = [slot for env in environments
             for slot in (deploy_target.live(service, env), deploy_target.standby(service, env))
             if slot is not None]
    return sorted({slot.revision for slot in slots})


@task(name="rotate_secrets", cache_policy=NO_CACHE)
def rotate_secrets(service_dir: str, environment: str, rotation: RotationSettings,
                   settings: RunbookSettings, force: bool = False,
                   target: str = "docker") -> list[SecretStatus]:
    """Advance every declared secret's rotation as far as it can go now, publishing where
    the target runs the service (restarted containers, the cluster's Secret)."""
    service = load_service(service_dir)
    publisher = make_target(target, settings).secret_publisher(
        service.spec, environment, service.spec.policy_for(environment).deploy)
    store = SecretStore(store_for(settings.stack), service.spec.name, environment)
    statuses = rotate(service.spec.secrets, store, publisher, lambda: datetime.now(UTC),
                      rotation.grace_s, force, time.sleep if rotation.wait_grace else None)
    logger = get_run_logger()
    for status in statuses:  # names and steps only, never a value
        logger.info("secret %s: step %s, actions %s, age %s d", status.name, status.step.value,
                    [a.value for a in status.actions],
                    "unknown" if status.age_days is None else f"{status.age_days:.1f}")
    return statuses



@task(name="resolve_image", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def resolve_image(reference: str, settings: StackSettings) -> ResolvedImage | None:
    """What ``registry/name:tag`` or ``registry/name@digest`` of the local registry is now
    (digest and layers); None when it is not there."""
    name, reference_part = _split(reference.removeprefix(f"{settings.registry}/"))
    found = Registry(settings.registry).layers(name, reference_part)
    if found is None:
        return None
    digest, layers = found
    return ResolvedImage(reference=reference, digest=digest, layers=layers)


@task(name="deployed_base_status", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def deployed_base_status(service: str, environments: list[str], target: str,
                         base: ResolvedImage, settings: RunbookSettings
                         ) -> list[BaseImageStatus]:
    """For each environment's live revision of ``service``: built on ``base`` or not."""
    deploy_target = make_target(target, settings)
    statuses = []
    for environment in environments:
        slot = deploy_target.live(service, environment)
        if slot is None:
            continue
        image = resolve_image.fn(slot.image, settings.stack)
        if image is None:
            raise ValueError(f"{slot.image} (live in {environment}) is not in the registry")
        statuses.append(base_image_status(service, environment, image, base))
    return statuses


@task(name="refresh_local_base", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def refresh_local_base(reference: str, settings: StackSettings) -> str:
    """Put the base that resolves now under the name Dockerfiles build ``FROM``
    (``StackSettings.base_image``), so a rebuild starts from it; returns its image id."""
    image_id = pull_as(settings.docker_host, reference, settings.base_image)
    get_run_logger().info("%s is now %s (from %s)", settings.base_image, image_id, reference)
    return image_id


@task(name="runbook_changes", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def runbook_changes(repo_dir: str, review: ReviewSettings, settings: RunbookSettings
                    ) -> RunbookReview:
    """Commits to the reviewed paths since the last completed review: the newest resolved
    review item, else the recorded date."""
    since = _last_completed_review(store_for(settings.stack), open_notifier(settings))
    commits = commits_touching(Path(repo_dir), review.paths, since, review.git_timeout_s)
    return runbook_review(commits, since, datetime.now(UTC), review.paths)


@task(name="record_runbook_review", cache_policy=NO_CACHE)
def record_runbook_review(review: RunbookReview, settings: StackSettings) -> None:
    record_review(store_for(settings), review.generated_at)


def _last_completed_review(state: StateStore, notifier: Notifier) -> datetime | None:
    resolved = [i.resolved_at for i in notifier.incidents.all()
                if i.category is Category.RUNBOOK_REVIEW and i.resolved_at is not None]
    recorded = last_review(state)
    return max([*resolved, *([recorded] if recorded else [])], default=None)


def _split(name_and_reference: str) -> tuple[str, str]:
    if "@" in name_and_reference:
        name, _, digest = name_and_reference.partition("@")
        return name, digest
    name, _, tag = name_and_reference.rpartition(":")
    return (name, tag) if name and "/" not in tag else (name_and_reference, "latest")
