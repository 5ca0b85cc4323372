"""Manual rollback: send the environment's traffic back to the revision kept as standby."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.locks import one_deploy_at_a_time
from runbook.errors import ConfigurationError, RunbookError
from runbook.models import Environment, Slot, TargetKind
from runbook.settings import StackSettings
from tasks.deploy import read_live_slot, read_standby_slot, switch_traffic


@flow(name="rollback")
def rollback(
    service: str,
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
    with one_deploy_at_a_time(service, env, lock_timeout_s):
        live, _ = read_live_slot(target, service, env, settings)
        standby = read_standby_slot(target, service, env, settings)
        if standby is None:
            raise RunbookError(f"{service}/{env} keeps no previous revision to roll back to")
        if to_revision is not None and to_revision not in (standby.revision, standby.image):
            raise ConfigurationError(
                f"{service}/{env} keeps only {standby.revision} for rollback, not {to_revision}"
            )
        switch_traffic(target, standby, settings)
    get_run_logger().info(
        "%s/%s rolled back from %s to %s", service, env,
        live.revision if live else None, standby.revision,
    )
    return standby
