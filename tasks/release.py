"""The release record's tasks: write each phase before the step it guards, and recover a
release a dead run left ``promoted-unverified`` (``runbook/release_record.py``)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from runbook.errors import DeployError
from runbook.models import Slot, Strategy, TargetKind
from runbook.policy import DeploySettings
from runbook.release_record import (
    RecoveryAction,
    ReleasePhase,
    ReleaseRecord,
    ReleaseRecords,
    recovery_for,
    state_store,
)
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook.targets import make_target
from runbook.targets.base import DeployTarget
from tasks.retry import TRANSIENT_RETRIES


def _records(settings: StackSettings) -> ReleaseRecords:
    return ReleaseRecords(state_store(settings))


@task(name="read_release_record", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def read_release_record(service: str, environment: str,
                        settings: StackSettings) -> ReleaseRecord | None:
    return _records(settings).get(service, environment)


@task(name="record_release", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def record_release(record: ReleaseRecord, settings: StackSettings) -> ReleaseRecord:
    """Write the record (a new candidate, or the phase it is about to enter)."""
    return _records(settings).put(record)


class Recovery(BaseModel):
    """What a run did about a release another run left unverified."""

    interrupted: ReleaseRecord
    serving: str | None
    """The revision serving the environment after the recovery."""
    detail: str


@task(name="recover_interrupted_release", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def recover_interrupted_release(
    service: str, environment: str, settings: RunbookSettings, current_run: str | None,
) -> Recovery | None:
    """Roll back a ``promoted-unverified`` release owned by a run that is no longer running
    (the caller holds the deploy slot); None when there is nothing to recover.

    Raises:
        DeployError: the environment is not in a state the record explains (e.g. neither
            the candidate nor the previous revision is live): a person must look.
    """
    records = _records(settings.stack)
    record = records.get(service, environment)
    if record is None or recovery_for(record, current_run) is RecoveryAction.NOTHING:
        return None
    # The record's target, not the caller's: `tidy` may be scheduled for another one.
    deploy_target = make_target(TargetKind(record.target), settings)
    serving, detail = _roll_back(deploy_target, record)
    note = f"interrupted (owner run {record.owner_run} gone): {detail}"
    records.move(service, environment, ReleasePhase.ROLLED_BACK, note)
    get_run_logger().warning("%s/%s: release %s was left unverified by run %s; %s", service,
                             environment, record.candidate, record.owner_run, detail)
    return Recovery(interrupted=record, serving=serving, detail=detail)


def _roll_back(deploy_target: DeployTarget, record: ReleaseRecord) -> tuple[str | None, str]:
    service, environment = record.service, record.environment
    deploy = record.deploy or DeploySettings()
    live = deploy_target.live(service, environment)
    if live is None or live.revision != record.candidate:
        if (live.revision if live else None) == record.previous:
            return record.previous, (f"traffic never left {record.previous}; candidate "
                                     f"{record.candidate} dropped")
        raise DeployError(f"{service}/{environment}: live is "
                          f"{live.revision if live else 'nothing'}, the record says "
                          f"{record.candidate} replacing {record.previous}: look by hand")
    if record.previous is None:
        deploy_target.discard(live)
        return None, f"first release {record.candidate} removed: nothing was live before it"
    if record.strategy == Strategy.ROLLING.value:
        restored = deploy_target.undo(service, environment, deploy)
        return restored.revision, f"rollout of {record.candidate} undone: back on " \
                                  f"{restored.revision}"
    standby = deploy_target.standby(service, environment)
    if standby is None or standby.revision != record.previous:
        raise DeployError(f"{service}/{environment}: {record.previous} is not kept for "
                          f"rollback (standby: {standby.revision if standby else 'none'})")
    _switch_and_discard(deploy_target, standby, live, deploy)
    return standby.revision, f"traffic back on {standby.revision}, {record.candidate} removed"


def _switch_and_discard(deploy_target: DeployTarget, to: Slot, candidate: Slot,
                        deploy: DeploySettings) -> None:
    deploy_target.switch(to, deploy)
    deploy_target.discard(candidate)
