"""Deploy stage: candidate in the idle color, the traffic switch, and switching back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runbook.errors import CandidateUnhealthy, GateFailed
from runbook.infra import public_endpoint, resolve
from runbook.models import ImageRef, Slot, TargetKind
from runbook.names import DEPLOY_TAG
from runbook.policy import DeploySettings
from runbook.service import ServiceSpec
from runbook.settings_root import RunbookSettings
from runbook.targets import make_target
from tasks.retry import TRANSIENT_RETRIES


@contextmanager
def candidate_health_gate() -> Iterator[None]:
    """A revision the target started and that never became healthy fails the release's
    candidate-health gate (never retried: the same revision fails the same way); the
    target's message, diagnostics included, is the gate's detail."""
    try:
        yield
    except CandidateUnhealthy as exc:
        raise GateFailed(str(exc)) from exc


@task(name="read_live_slot", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def read_live_slot(
    target: TargetKind, service: str, environment: str, settings: RunbookSettings
) -> tuple[Slot | None, str | None]:
    """The slot serving the environment now, and the environment's endpoint URL: the one
    ``runbook.yaml`` names, else the target's own (None before its first deploy: reading
    never creates a route)."""
    deploy_target = make_target(target, settings, environment)
    endpoint = public_endpoint(resolve(settings.stack, environment, target), service) \
        or deploy_target.endpoint(service, environment)
    return deploy_target.live(service, environment), endpoint


@task(name="read_endpoint", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def read_endpoint(
    target: TargetKind, service: str, environment: str, settings: RunbookSettings
) -> str | None:
    """The environment's endpoint URL once the target made one (after a first deploy)."""
    return (public_endpoint(resolve(settings.stack, environment, target), service)
            or make_target(target, settings, environment).endpoint(service, environment))


@task(name="deploy_candidate", tags=[DEPLOY_TAG], cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def deploy_candidate(
    target: TargetKind, spec: ServiceSpec, environment: str, image: ImageRef,
    deploy: DeploySettings, settings: RunbookSettings,
) -> tuple[Slot, str]:
    """Start the image in the idle color and wait for its health; returns it and its preview URL."""
    deploy_target = make_target(target, settings, environment)
    with candidate_health_gate():
        slot = deploy_target.deploy_candidate(spec, environment, image, deploy)
    get_run_logger().info("%s is healthy in %s", slot.revision, slot.color)
    return slot, deploy_target.preview_url(spec.name, environment)


@task(name="restore_standby", tags=[DEPLOY_TAG], cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def restore_standby(
    target: TargetKind, spec: ServiceSpec, environment: str, image: ImageRef,
    deploy: DeploySettings, settings: RunbookSettings,
) -> Slot:
    """Put a revision back in the idle color as the rollback standby (healthy, no traffic,
    not on the preview)."""
    deploy_target = make_target(target, settings, environment)
    with candidate_health_gate():
        slot = deploy_target.restore_standby(spec, environment, image, deploy)
    get_run_logger().info("%s is the standby again in %s", slot.revision, slot.color)
    return slot


@task(name="switch_traffic", tags=[DEPLOY_TAG], cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def switch_traffic(target: TargetKind, slot: Slot, deploy: DeploySettings,
                   settings: RunbookSettings) -> None:
    """All traffic to ``slot``; a slot kept without replicas is scaled up first, within
    ``deploy.health_timeout_s``."""
    make_target(target, settings, slot.environment).switch(slot, deploy)
    get_run_logger().info("traffic of %s/%s now goes to %s", slot.service, slot.environment,
                          slot.server)


@task(name="discard_candidate", tags=[DEPLOY_TAG], cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def discard_candidate(target: TargetKind, slot: Slot, settings: RunbookSettings) -> str:
    """Remove a candidate that will not (or no longer) serve; returns its last log lines."""
    return make_target(target, settings, slot.environment).discard(slot)


@task(name="retire_slot", tags=[DEPLOY_TAG], cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def retire_slot(target: TargetKind, slot: Slot, settings: RunbookSettings) -> None:
    make_target(target, settings, slot.environment).retire(slot)


@task(name="read_standby_slot", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def read_standby_slot(
    target: TargetKind, service: str, environment: str, settings: RunbookSettings
) -> Slot | None:
    """The previous revision kept for rollback, if the target still has it."""
    return make_target(target, settings, environment).standby(service, environment)


@task(name="isolate_service", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def isolate_service(
    target: TargetKind, service: str, environment: str, settings: RunbookSettings
) -> list[Slot]:
    """Zero traffic to the service in the environment; returns the slots that were serving."""
    isolated = make_target(target, settings, environment).isolate(service, environment)
    get_run_logger().warning("%s/%s isolated: no traffic reaches it (was %s)", service,
                             environment, ", ".join(s.server for s in isolated) or "nothing")
    return isolated


@task(name="roll_out_release", tags=[DEPLOY_TAG], cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def roll_out_release(
    target: TargetKind, spec: ServiceSpec, environment: str, image: ImageRef,
    deploy: DeploySettings, settings: RunbookSettings,
) -> Slot:
    """Rolling strategy: replace the live revision in place and wait for the rollout."""
    with candidate_health_gate():
        return make_target(target, settings, environment).roll_out(spec, environment, image,
                                                                   deploy)


@task(name="undo_rollout", tags=[DEPLOY_TAG], cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def undo_rollout(
    target: TargetKind, service: str, environment: str, deploy: DeploySettings,
    settings: RunbookSettings,
) -> Slot:
    """Rolling strategy: back to the revision before the last rollout."""
    return make_target(target, settings, environment).undo(service, environment, deploy)


@task(name="tidy_environment", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def tidy_environment(
    target: TargetKind, service: str, environment: str, settings: RunbookSettings
) -> list[str]:
    """Release what the target keeps only past its keep-delay (the standby's replicas on
    Kubernetes), keeping the rollback possible; returns what was done."""
    done = make_target(target, settings, environment).tidy(service, environment)
    for action in done:
        get_run_logger().info("%s/%s: %s", service, environment, action)
    return done
