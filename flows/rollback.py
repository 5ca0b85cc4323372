"""Manual rollback: back to the standby, or to any revision the registry still has; then
the standard checks on it for a short window, and a report saying whether it is healthy.
Every way it fails is alerted (``rollback_failed`` when the switch itself failed), and the
release record says what is live after it."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.locks import one_deploy_at_a_time
from runbook.alerts.models import AlertKind, make_alert
from runbook.errors import ConfigurationError
from runbook.models import Environment, ServiceName, Slot, TargetKind
from runbook.release_record import ReleasePhase, ReleaseRecord
from runbook.rollback import RollbackKind, RollbackReport, choose, rollback_markdown
from runbook.service import ServiceSpec, load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from tasks.deploy import deploy_candidate, read_live_slot, read_standby_slot, switch_traffic
from tasks.notify import publish_alert
from tasks.release import record_release
from tasks.rollback import (
    deploy_settings,
    find_revision_image,
    read_deployed_spec,
    verify_rollback,
)

ROLLBACK_CAUSE = "manual-rollback"


@flow(name="rollback")
def rollback(
    service: ServiceName,
    environment: Environment = Environment.STAGING,
    to_revision: str | None = None,
    target: TargetKind = TargetKind.DOCKER,
    lock_timeout_s: float = 300.0,
    service_dir: str | None = None,
    verify_window_s: float | None = None,
) -> RollbackReport:
    """Roll back, then check the application's health.

    Args:
        service: The service's name.
        environment: Where to roll back.
        to_revision: The revision (or image) to return to: the standby is one switch; any
            other revision whose image the registry still has is started again by digest
            and switched to. None: the standby.
        target: The deploy target.
        lock_timeout_s: A deploy of the same service and environment in progress is waited
            for this long (it may itself be rolling back); then the rollback fails.
        service_dir: The service's directory; needed only when the target did not keep the
            service.yaml the environment was deployed with (kubernetes).
        verify_window_s: How long the standard checks watch the revision rolled back to;
            None: the service's analysis window.
    """
    settings = RunbookSettings.load()
    env = Environment(environment).value
    kind_of_target = TargetKind(target)
    try:
        with one_deploy_at_a_time(service, env, lock_timeout_s, settings.stack):
            live, endpoint = read_live_slot(kind_of_target, service, env, settings)
            standby = read_standby_slot(kind_of_target, service, env, settings)
            kind = choose(service, env, to_revision, live, standby)
            spec = _spec(kind_of_target, service, env, service_dir, settings)
            if kind is RollbackKind.STANDBY:
                assert standby is not None  # choose() says STANDBY only when there is one
                restored = standby
            else:
                assert to_revision is not None
                restored = _redeploy(kind_of_target, spec, env, to_revision, settings)
            switch_traffic(kind_of_target, restored, deploy_settings(spec, env), settings)
            _record(service, env, kind_of_target, live, restored, settings.stack)
            get_run_logger().info("%s/%s rolled back from %s to %s (%s)", service, env,
                                  live.revision if live else None, restored.revision,
                                  kind.value)
            check = (verify_rollback(kind_of_target, spec, restored, endpoint,
                                     verify_window_s, settings) if spec is not None else None)
    except ConfigurationError:
        raise  # bad input (a stale or unknown --to): refused, nothing moved, nobody to wake
    except Exception as exc:
        _alert_failure(service, env, kind_of_target, settings, exc)
        raise
    report = RollbackReport(service=service, environment=env, kind=kind,
                            previous=live.revision if live else None,
                            revision=restored.revision, image=restored.image,
                            color=restored.color, check=check)
    create_markdown_artifact(key=f"rollback-{service}-{env}", markdown=rollback_markdown(report),
                             description=f"rollback of {service}/{env} to {report.revision}")
    return report


def _record(service: str, env: str, target: TargetKind, live: Slot | None, restored: Slot,
            settings: StackSettings) -> None:
    # Chosen by a person and served before (standby) or verified when released (an older
    # revision): it is the verified release now.
    record_release(ReleaseRecord(
        service=service, environment=env, candidate=restored.revision,
        previous=live.revision if live else None, phase=ReleasePhase.VERIFIED,
        target=target.value, note="manual rollback", owner_run=None,
    ), settings, return_state=True)


def _spec(target: TargetKind, service: str, env: str, service_dir: str | None,
          settings: RunbookSettings) -> ServiceSpec | None:
    if service_dir is not None:
        spec = load_service(service_dir).spec
        if spec.name != service:
            raise ConfigurationError(f"{service_dir} is {spec.name}, not {service}")
        return spec
    return read_deployed_spec(target, service, env, settings)


def _redeploy(target: TargetKind, spec: ServiceSpec | None, env: str, revision: str,
              settings: RunbookSettings) -> Slot:
    if spec is None:
        raise ConfigurationError(
            f"the service.yaml of {env} is not known to the {target} target",
            hint="pass the service directory (--service-dir) to redeploy an older revision")
    image = find_revision_image(spec.name, revision, settings.stack)
    if image is None:
        raise ConfigurationError(
            f"{spec.name}:{revision} is not in the registry {settings.stack.registry} (cleaned up, "
            "or never built): cannot roll back to it")
    slot, _ = deploy_candidate(target, spec, env, image, spec.policy_for(env).deploy,
                               settings)
    return slot


def _alert_failure(service: str, env: str, target: TargetKind, settings: RunbookSettings,
                   exc: Exception) -> None:
    """A rollback someone asked for did not happen: they, and the on-call, must know."""
    state = read_live_slot(target, service, env, settings, return_state=True)
    live = (state.result()[0] if state.is_completed() else None)
    live_now = (live.revision if live else "nothing") if state.is_completed() else "unknown"
    publish_alert(make_alert(
        AlertKind.ROLLBACK_FAILED, service, env,
        f"manual rollback FAILED: live now {live_now}: act now",
        details=f"{type(exc).__name__}: {exc}", link=flow_run.get_flow_run_ui_url(),
        cause=ROLLBACK_CAUSE), settings, return_state=True)
