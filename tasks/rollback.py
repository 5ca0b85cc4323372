"""Rollback tasks: find a kept revision's image by digest, redeploy it, and check the
application's health after any rollback."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runbook.adapters.registry import Registry
from runbook.build import repository
from runbook.models import ImageRef, Slot, TargetKind
from runbook.policy import DeploySettings
from runbook.rollback import RollbackCheck, rollback_check
from runbook.service import ServiceSpec
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook.targets import make_target
from tasks.retry import TRANSIENT_RETRIES
from tasks.verify import analyze_release


@task(name="find_revision_image", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def find_revision_image(service: str, revision: str, settings: StackSettings) -> ImageRef | None:
    """The revision's image by digest, if the registry still has it (registry cleanup keeps
    the newest tags and every live or standby one)."""
    digest = Registry(settings.registry).manifest_digest(service, revision)
    if digest is None:
        return None
    return ImageRef(repository=repository(settings.registry, service), tag=revision,
                    digest=digest)


@task(name="read_deployed_spec", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def read_deployed_spec(target: TargetKind, service: str, environment: str,
                       settings: RunbookSettings) -> ServiceSpec | None:
    """The service.yaml the environment's revisions were deployed with, if the target kept
    it."""
    return make_target(target, settings).spec_of(service, environment)


def deploy_settings(spec: ServiceSpec | None, environment: str) -> DeploySettings:
    """The service's deploy settings in the environment; the runbook defaults only where its
    ``service.yaml`` is not known (the target kept none and no directory was given)."""
    return spec.policy_for(environment).deploy if spec is not None else DeploySettings()


@task(name="verify_rollback", cache_policy=NO_CACHE)
def verify_rollback(target: TargetKind, spec: ServiceSpec, slot: Slot, endpoint: str,
                    window_s: float | None, settings: RunbookSettings) -> RollbackCheck:
    """The standard checks (health, error rate, response time from Prometheus) on the
    revision rolled back to, for a short window; whether the application is healthy."""
    policy = spec.policy_for(slot.environment)
    if window_s is not None:
        analysis = policy.analysis.model_copy(update={"window_s": window_s})
        policy = policy.model_copy(update={"analysis": analysis})
    verdict = analyze_release.fn(target, spec, slot, endpoint, policy, settings)
    check = rollback_check(slot, verdict)
    get_run_logger().info("after the rollback to %s: %s", slot.revision, check.summary)
    return check
