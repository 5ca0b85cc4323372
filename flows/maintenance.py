"""The runbook's maintenance calendar as flows: daily pipeline health, weekly scan review,
monthly secret rotation, registry cleanup, base-image update check, quarterly runbook
review. Schedules live in ``prefect.yaml``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.locks import one_deploy_at_a_time
from flows.pipeline import pipeline
from runbook.alerts.models import AlertKind, Severity, make_alert
from runbook.alerts.release import interrupted_recovery_failed_alert, interrupted_release_alert
from runbook.models import Environment, ServiceName, TargetKind
from runbook.ops.base_image import BaseImageStatus, RebuildPlan, plan_rebuilds, stale
from runbook.ops.cleanup import CleanupPlan
from runbook.ops.health import PipelineHealth
from runbook.ops.markdown import (
    base_image_markdown,
    cleanup_markdown,
    dora_markdown,
    health_markdown,
    review_markdown,
    scan_review_markdown,
)
from runbook.ops.policy import OpsPolicy
from runbook.ops.review import RunbookReview
from runbook.ops.rotation import SecretStatus
from runbook.ops.scan_review import ScanReview
from runbook.service import load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from tasks.deploy import read_live_slot, tidy_environment
from tasks.incidents import read_incidents
from tasks.notify import flush_outbox, publish_alert
from tasks.ops import (
    application_metrics,
    apply_registry_cleanup,
    compute_dora,
    compute_pipeline_health,
    deployed_base_status,
    deployed_revisions,
    dora_trend_chart,
    health_trend_chart,
    plan_registry_cleanup,
    publish_ops_report,
    push_dora_metrics,
    push_health_metrics,
    read_pipeline_runs,
    record_runbook_review,
    refresh_local_base,
    resolve_image,
    review_scans,
    rotate_secrets,
    runbook_changes,
)
from tasks.release import recover_interrupted_release

OPS_ENVIRONMENT = "ops"  # alerts about the pipeline itself, not one environment


@flow(name="daily-health", log_prints=True)
def daily_health(flow_names: list[str] | None = None, policy: OpsPolicy | None = None,
                 alert: bool = True, routes: list[str] | None = None) -> PipelineHealth:
    """Build/deploy success and durations over 1 and 7 days and the four DORA keys per
    service and environment beside the elite levels, pushed, reported with the routes'
    application metrics and trend charts, alerted.

    Args:
        flow_names: The flows whose runs are counted; default ``["pipeline"]``.
        policy: The health targets, DORA and trend windows; default the runbook's.
        alert: Raise a warning alert when a health target is breached.
        routes: The router routes (``<service>.<env>``) to report; None: every route
            Prometheus saw that day.
    """
    settings = RunbookSettings.load()
    stack = settings.stack
    with _alerted(settings, "daily-health"):
        policy = policy or OpsPolicy()
        flows = flow_names or ["pipeline"]
        targets = policy.health
        runs = read_pipeline_runs(flows, max(*targets.windows_days, targets.dora_days,
                                             targets.trend_days))
        health = compute_pipeline_health(targets, flows, runs)
        push_health_metrics(health, stack)
        keys, events = compute_dora(targets, runs, read_incidents(settings),
                                    policy.review.git_timeout_s)
        push_dora_metrics(keys, stack)
        app = application_metrics(targets, stack, routes)
        chart = health_trend_chart(targets, flows, runs, stack)
        dora_trend = dora_trend_chart(targets, events, stack)
        publish_ops_report("pipeline-health", health_markdown(health, app, chart)
                           + "\n" + dora_markdown(keys, dora_trend),
                           "daily pipeline health and DORA")
        if alert and health.breaches:
            publish_alert(make_alert(
                AlertKind.PIPELINE_FAILURE, "runbook", OPS_ENVIRONMENT,
                f"pipeline health: {len(health.breaches)} target(s) breached",
                details="\n".join(b.summary for b in health.breaches), severity=Severity.WARNING,
                cause="pipeline-health"), settings)
        flush_outbox(settings)
        return health


@flow(name="weekly-scan-review", log_prints=True)
def weekly_scan_review(services: dict[ServiceName, str | None],
                       policy: OpsPolicy | None = None,
                       alert: bool = True) -> list[ScanReview]:
    """New, resolved and aging findings per service.

    Args:
        services: Service name -> its service directory, whose declared suppressions
            apply (None: no suppressions).
        policy: The scan SLAs; default the runbook's.
        alert: Raise an alert for each service with findings open past their SLA.
    """
    settings = RunbookSettings.load()
    with _alerted(settings, "weekly-scan-review"):
        policy = policy or OpsPolicy()
        reviews = [review_scans(name, settings.stack, policy.scan, directory)
                   for name, directory in services.items()]
        publish_ops_report("weekly-scan-review", scan_review_markdown(reviews),
                           "weekly security scan review")
        for found in reviews:
            if alert and found.sla_breaches:
                publish_alert(make_alert(
                    AlertKind.VULNERABILITY, found.service, OPS_ENVIRONMENT,
                    f"{len(found.sla_breaches)} finding(s) open past their SLA",
                    cause="scan-sla"), settings)
        return reviews


@flow(name="secret-rotation", log_prints=True)
def secret_rotation(service_dir: str, environment: Environment, policy: OpsPolicy | None = None,
                    force: bool = False, target: str = "docker") -> list[SecretStatus]:
    """Rotate the service's declared secrets; alert on what is overdue and manual, and on a
    rotation that failed (the service may hold a half-published secret).

    Args:
        service_dir: The service's directory (its ``service.yaml`` declares the secrets).
        environment: The environment whose secrets are rotated.
        policy: Maximum ages of the secrets; default the runbook's.
        force: Rotate every automatic secret now, due or not.
        target: The deploy target the service runs on (``docker`` or ``kubernetes``).
    """
    settings = RunbookSettings.load()
    policy = policy or OpsPolicy()
    spec = load_service(service_dir).spec
    env = Environment(environment).value
    with _alerted(settings, "secret-rotation", spec.name, env):
        # A rotation restarts the service's containers: never at the same time as a deploy.
        with one_deploy_at_a_time(spec.name, env, spec.policy_for(env).deploy.lock_timeout_s,
                                  settings.stack):
            statuses = rotate_secrets(service_dir, env, policy.rotation, settings,
                                      force, target)
        overdue = [s.name for s in statuses if s.overdue and not s.automatic]
        if overdue:
            publish_alert(make_alert(
                AlertKind.SECURITY_INCIDENT, spec.name, env,
                f"secrets past their maximum age, rotate by hand: {overdue}",
                severity=Severity.WARNING, cause="secret-overdue"), settings)
        return statuses


@flow(name="registry-cleanup", log_prints=True)
def registry_cleanup(services: list[ServiceName], environments: list[Environment] | None = None,
                     target: str = "docker", policy: OpsPolicy | None = None,
                     dry_run: bool = False) -> list[CleanupPlan]:
    """Keep the newest tags and every deployed or standby revision; delete the rest.

    Args:
        services: Service names whose repositories are cleaned.
        environments: Environments whose live and standby revisions are kept; default
            staging and production.
        target: The deploy target asked what is deployed (``docker`` or ``kubernetes``).
        policy: How many of the newest tags are kept; default the runbook's.
        dry_run: Report the plan without deleting anything.
    """
    settings = RunbookSettings.load()
    with _alerted(settings, "registry-cleanup"):
        policy = policy or OpsPolicy()
        plans = []
        for service in services:
            protected = deployed_revisions(service, environments or ["staging", "production"],
                                           target, settings)
            plan = plan_registry_cleanup(service, protected, policy.cleanup, settings.stack)
            if not dry_run:
                apply_registry_cleanup(plan, settings.stack)
            plans.append(plan)
        publish_ops_report("registry-cleanup", cleanup_markdown(plans), "registry cleanup")
        return plans


@flow(name="base-image-check", log_prints=True)
def base_image_check(services: dict[ServiceName, str | None],
                     environments: list[Environment] | None = None,
                     target: str = "docker", base_image: str | None = None,
                     alert: bool = True, rebuild: bool = False) -> list[BaseImageStatus]:
    """Whether every live image is built on the base image that resolves now in the local
    registry (``StackSettings.base_image``, mirrored there by the stack); report and alert
    on the ones to rebuild.

    Args:
        services: Service name -> its service directory (None: check only, no rebuild).
        environments: Environments whose live images are checked; default staging and
            production.
        target: The deploy target asked what is live (``docker`` or ``kubernetes``).
        base_image: The base image reference to compare with; default the stack's base
            image in the local registry.
        alert: Raise a warning alert when a live image is not built on the current base.
        rebuild: Run the pipeline for every stale environment of a service whose directory
            is known, after putting the current base under the name Dockerfiles use. The
            base's id is part of the revision, so the rebuild makes a new image.
    """
    settings = RunbookSettings.load()
    with _alerted(settings, "base-image-check"):
        stack = settings.stack
        reference = base_image or f"{stack.registry}/{stack.base_image}"
        base = resolve_image(reference, stack)
        if base is None:
            raise ValueError(f"base image {reference} is not in the registry")
        statuses = [status for service in services
                    for status in deployed_base_status(
                        service, environments or ["staging", "production"], target, base, settings)]
        publish_ops_report("base-image-check",
                           base_image_markdown(statuses, reference, base.digest),
                           "base-image update check")
        outdated = stale(statuses)
        if alert and outdated:
            publish_alert(make_alert(
                AlertKind.VULNERABILITY, "runbook", OPS_ENVIRONMENT,
                f"{len(outdated)} deployed image(s) not built on the current base {reference}",
                details="\n".join(f"{s.service}/{s.environment}: {s.image}" for s in outdated),
                severity=Severity.WARNING, cause="base-image-stale"), settings)
        if rebuild:
            _rebuild(plan_rebuilds(statuses, services), reference, target, stack)
        return statuses


def _rebuild(plan: RebuildPlan, reference: str, target: str, settings: StackSettings) -> None:
    if plan.unknown_source:
        print(f"not rebuilt, no service directory given: {plan.unknown_source}")
    if not plan.rebuilds:
        return
    refresh_local_base(reference, settings)
    for item in plan.rebuilds:
        # A subflow per environment; one failed release does not stop the others.
        state = pipeline(service_dir=item.service_dir, environment=item.environment,
                         target=target, return_state=True)
        print(f"rebuild of {item.service} into {item.environment}: {state.name}")


@flow(name="runbook-review", log_prints=True)
def runbook_review_reminder(repo_dir: str = ".", policy: OpsPolicy | None = None,
                            record: bool = False) -> RunbookReview:
    """The quarterly runbook review: what changed in the wiring, thresholds and schedules
    since the last completed review, as a report, and a review item tracked like an
    incident (``runbook incident list``: owner by ack, deadline, resolve when done) that
    notifies the owners (runbook.yaml ``contacts``: the primary on-call and the managers).
    Resolving the item completes the review: the next one lists changes since then.

    Args:
        repo_dir: The checkout whose history is reviewed.
        policy: Paths reviewed, git deadline.
        record: Record the review as completed now, without waiting for the item to be
            resolved (the review happened elsewhere).
    """
    settings = RunbookSettings.load()
    with _alerted(settings, "runbook-review"):
        policy = policy or OpsPolicy()
        review = runbook_changes(repo_dir, policy.review, settings)
        publish_ops_report("runbook-review", review_markdown(review), "quarterly runbook review")
        changes = "\n".join(f"- {c.committed_at:%Y-%m-%d} {c.subject}"
                            for c in review.commits[:20])
        publish_alert(make_alert(
            AlertKind.RUNBOOK_REVIEW, "runbook", OPS_ENVIRONMENT,
            f"quarterly runbook review due: {len(review.commits)} change(s) to review; ack "
            "to own it, resolve when reviewed",
            details=changes or "no changes since the last review",
            link=flow_run.get_flow_run_ui_url(), cause="runbook-review"), settings)
        if record:
            record_runbook_review(review, settings.stack)
        return review


@flow(name="tidy", log_prints=True)
def tidy(services: list[ServiceName], environments: list[Environment] | None = None,
         target: str = "kubernetes", slot_wait_s: float = 10.0) -> dict[str, list[str]]:
    """Roll back releases a dead run left unverified, and release what each
    service/environment keeps only past its keep-delay (on Kubernetes: the standby color
    scaled to zero once ``scale_down_delay_s`` passed since the switch; it stays deployable
    for a rollback). Scheduled every few minutes, so nobody has to rerun anything.

    Args:
        services: Service names.
        environments: Environments to tidy; default staging and production.
        target: ``kubernetes`` or ``docker`` (the docker target keeps nothing past a delay).
        slot_wait_s: How long to wait for a service/environment's deploy slot; a deploy
            holding it tidies at its own start, so a busy one is skipped, not waited for.

    Returns:
        What was done, by ``service/environment``.
    """
    settings = RunbookSettings.load()
    logger = get_run_logger()
    done: dict[str, list[str]] = {}
    for service in services:
        for environment in environments or [Environment.STAGING, Environment.PRODUCTION]:
            env = Environment(environment).value
            try:
                # Never while a deploy of it runs: its rollback may be scaling the standby up.
                with one_deploy_at_a_time(service, env, slot_wait_s, settings.stack):
                    done[f"{service}/{env}"] = _tidy_one(service, env, TargetKind(target),
                                                         settings)
            except TimeoutError:
                logger.info("%s/%s: a deploy holds the slot; skipped", service, env)
            except Exception as exc:
                # One environment's failure is alerted and the others are still tidied.
                logger.exception("tidying %s/%s failed", service, env)
                _publish_failure(settings, "tidy", service, env, exc)
    return done


def _tidy_one(service: str, environment: str, target: TargetKind,
              settings: RunbookSettings) -> list[str]:
    link = flow_run.get_flow_run_ui_url()
    recovered = recover_interrupted_release(service, environment, settings, None,
                                            return_state=True)
    actions: list[str] = []
    if not recovered.is_completed():
        live = read_live_slot(target, service, environment, settings, return_state=True)
        live_now = ((live.result()[0].revision if live.result()[0] else "nothing")
                    if live.is_completed() else "unknown")
        publish_alert(interrupted_recovery_failed_alert(
            service, environment, str(recovered.message), live_now, link), settings,
            return_state=True)
        actions.append(f"interrupted release NOT rolled back: {recovered.message}")
    elif (recovery := recovered.result()) is not None:
        publish_alert(interrupted_release_alert(
            service, environment, recovery.interrupted.candidate, recovery.interrupted.owner_run,
            recovery.serving, recovery.detail, link), settings, return_state=True)
        actions.append(recovery.detail)
    return actions + tidy_environment(target, service, environment, settings)


@contextmanager
def _alerted(settings: RunbookSettings, operation: str, service: str = "runbook",
             environment: str = OPS_ENVIRONMENT,
             kind: AlertKind = AlertKind.PIPELINE_FAILURE) -> Iterator[None]:
    """A scheduled operation that fails alerts (nobody watches a schedule), then fails."""
    try:
        yield
    except Exception as exc:
        _publish_failure(settings, operation, service, environment, exc, kind)
        raise


def _publish_failure(settings: RunbookSettings, operation: str, service: str,
                     environment: str, exc: Exception,
                     kind: AlertKind = AlertKind.PIPELINE_FAILURE) -> None:
    publish_alert(make_alert(
        kind, service, environment, f"{operation} failed: {type(exc).__name__}",
        details=str(exc)[:2000], link=flow_run.get_flow_run_ui_url(),
        cause=f"{operation}-failed"), settings, return_state=True)
