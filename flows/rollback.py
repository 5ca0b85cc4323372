"""Manual rollback: send the environment's traffic back to the revision kept as standby.
Every way it fails is alerted (``rollback_failed`` when the switch itself failed), and the
release record says what is live after it."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.locks import one_deploy_at_a_time
from runbook.alerts.models import AlertKind, make_alert
from runbook.errors import ConfigurationError, RunbookError
from runbook.models import Environment, ServiceName, Slot, TargetKind
from runbook.release_record import ReleasePhase, ReleaseRecord
from runbook.settings import StackSettings
from tasks.deploy import read_live_slot, read_standby_slot, switch_traffic
from tasks.notify import publish_alert
from tasks.release import record_release

ROLLBACK_CAUSE = "manual-rollback"


@flow(name="rollback")
def rollback(
    service: ServiceName,
    environment: Environment = Environment.STAGING,
    to_revision: str | None = None,
    target: TargetKind = TargetKind.DOCKER,
    lock_timeout_s: float = 300.0,
) -> Slot:
    """Switch to the standby revision.

    Args:
        service: The service's name.
        environment: Where to roll back.
        to_revision: Refuse unless this is the revision kept (guards against a stale view).
        target: The deploy target.
        lock_timeout_s: A deploy of the same service and environment in progress is waited
            for this long (it may itself be rolling back); then the rollback fails.
    """
    settings = StackSettings()
    env = Environment(environment).value
    try:
        with one_deploy_at_a_time(service, env, lock_timeout_s):
            live, standby = _switch_to_standby(service, env, to_revision, TargetKind(target),
                                               settings)
    except ConfigurationError:
        raise  # bad input (a stale --to): refused, nothing moved, nobody to wake
    except Exception as exc:
        _alert_failure(service, env, TargetKind(target), settings, exc)
        raise
    get_run_logger().info(
        "%s/%s rolled back from %s to %s", service, env,
        live.revision if live else None, standby.revision,
    )
    return standby


def _switch_to_standby(service: str, env: str, to_revision: str | None, target: TargetKind,
                       settings: StackSettings) -> tuple[Slot | None, Slot]:
    live, _ = read_live_slot(target, service, env, settings)
    standby = read_standby_slot(target, service, env, settings)
    if standby is None:
        raise RunbookError(f"{service}/{env} keeps no previous revision to roll back to")
    if to_revision is not None and to_revision not in (standby.revision, standby.image):
        raise ConfigurationError(
            f"{service}/{env} keeps only {standby.revision} for rollback, not {to_revision}"
        )
    switch_traffic(target, standby, settings)
    # The standby served before and is chosen by a person: it is the verified release now.
    record_release(ReleaseRecord(
        service=service, environment=env, candidate=standby.revision,
        previous=live.revision if live else None, phase=ReleasePhase.VERIFIED,
        target=target.value, note="manual rollback", owner_run=None,
    ), settings, return_state=True)
    return live, standby


def _alert_failure(service: str, env: str, target: TargetKind, settings: StackSettings,
                   exc: Exception) -> None:
    """A rollback someone asked for did not happen: they, and the on-call, must know."""
    state = read_live_slot(target, service, env, settings, return_state=True)
    live = (state.result()[0] if state.is_completed() else None)
    live_now = (live.revision if live else "nothing") if state.is_completed() else "unknown"
    publish_alert(make_alert(
        AlertKind.ROLLBACK_FAILED, service, env,
        f"manual rollback FAILED: live now {live_now}: act now",
        details=f"{type(exc).__name__}: {exc}", link=flow_run.get_flow_run_ui_url(),
        cause=ROLLBACK_CAUSE), return_state=True)
