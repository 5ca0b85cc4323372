"""The durable release record: which revision of a service an environment is moving to, how
far that got, and which run owns it. One document per service and environment in the state
store, written before each step that changes traffic, so a run that dies (SIGKILL, OOM, a
lost worker pod) leaves the truth behind for the next run and for the scheduled ``tidy``.

"Already live" is only true for a ``verified`` revision: a release promoted by a run that
died before its verification ended is *not* released, whatever the router says.

What happens to an interrupted release (``promoted-unverified`` owned by a run that is no
longer running) is :func:`recovery_for`'s decision: **roll it back** to the previous
revision. Verifying it again from the start was the alternative; it was not chosen because
the dead run may have been killed *by* the release (OOM), the verification traffic and window
belong to the run that started them, and the previous revision is the last one that passed
verification. The next run of the pipeline delivers the release again, from the start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from runbook.policy import DeploySettings
from runbook.settings import StackSettings
from runbook.store import Collection, StateStore, layout
from runbook.store.open import store_for

KIND = layout.kind(
    "release", key="<service>/<environment>", owner="runbook.release_record",
    deletable="when the service is decommissioned from the environment",
)


class ReleasePhase(StrEnum):
    PREVIEWING = "previewing"
    """The candidate runs beside the live revision; no traffic moved."""
    PROMOTED_UNVERIFIED = "promoted-unverified"
    """Written *before* the switch: traffic is (or is about to be) on the candidate and
    verification has not said yes."""
    VERIFIED = "verified"
    """Verification (or a person, for an inconclusive verdict) kept the candidate."""
    ROLLED_BACK = "rolled-back"
    """Traffic went back to the previous revision (or nothing, for a first release)."""


class ReleaseRecord(BaseModel):
    service: str
    environment: str
    candidate: str
    """The revision being released."""
    previous: str | None = None
    """The revision that served before the release (None: a first release)."""
    phase: ReleasePhase
    strategy: str = "blue-green"
    """How traffic moved: ``rolling`` is undone by the target's undo, blue-green by a switch."""
    target: str = "docker"
    """Where it runs (``docker`` or ``kubernetes``): recovery reads and moves that target."""
    owner_run: str | None = None
    """The Prefect flow run id that owns the release while it is not final."""
    deploy: DeploySettings | None = None
    """The service's deploy settings the owner run released with: a recovery by another run
    (or ``tidy``, which knows no service.yaml) waits as long as the owner would have. None in
    records written before they were kept (the runbook defaults then)."""
    verified: str | None = None
    """The last revision verification kept here, carried over by every later record: a
    candidate that is blocked or rolled back does not make the verified one unknown."""
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    note: str = ""


class RecoveryAction(StrEnum):
    NOTHING = "nothing"
    ROLL_BACK = "roll_back"


def recovery_for(record: ReleaseRecord | None, current_run: str | None) -> RecoveryAction:
    """What a run holding the deploy slot does about the record it finds (pure).

    Holding the slot is the proof that the owner is not running a deploy any more: every
    step that moves traffic runs under the slot, and a dead holder's slot is only given to
    another run once Prefect or the slot's heartbeat says the holder is gone
    (``flows/locks.py``).

    Args:
        record: the service/environment's record, None when nothing was ever recorded.
        current_run: the flow run asking (its own record is never interrupted).

    Returns:
        ROLL_BACK for a ``promoted-unverified`` release of another run, else NOTHING.
    """
    if record is None or record.phase is not ReleasePhase.PROMOTED_UNVERIFIED:
        return RecoveryAction.NOTHING
    if current_run is not None and record.owner_run == current_run:
        return RecoveryAction.NOTHING
    return RecoveryAction.ROLL_BACK


def is_verified(record: ReleaseRecord | None, revision: str) -> bool:
    """Whether ``revision`` is the environment's verified release ("already live"): never
    while a promotion of it is unverified."""
    if record is None:
        return False
    if record.phase is ReleasePhase.PROMOTED_UNVERIFIED and record.candidate == revision:
        return False
    return record.verified == revision


class ReleaseRecords:
    """The records of one state store."""

    def __init__(self, store: StateStore) -> None:
        self._records = Collection(store, KIND, ReleaseRecord)

    def get(self, service: str, environment: str) -> ReleaseRecord | None:
        return self._records.get(_key(service, environment))

    def put(self, record: ReleaseRecord) -> ReleaseRecord:
        """Write the record, carrying the last verified revision over (under the row lock)."""
        with self._records.update(_key(record.service, record.environment), record) as held:
            before = held.value
            verified = (record.candidate if record.phase is ReleasePhase.VERIFIED
                        else record.verified or (before.verified if before else None))
            held.value = record.model_copy(update={"verified": verified,
                                                   "updated_at": datetime.now(UTC)})
            return held.value

    def move(self, service: str, environment: str, phase: ReleasePhase,
             note: str = "") -> ReleaseRecord | None:
        """Set the phase of the current record under its row lock; None when there is none."""
        with self._records.update(_key(service, environment)) as held:
            if held.value is None:
                return None
            verified = (held.value.candidate if phase is ReleasePhase.VERIFIED
                        else held.value.verified)
            held.value = held.value.model_copy(update={
                "phase": phase, "note": note, "verified": verified,
                "updated_at": datetime.now(UTC)})
            return held.value

    def delete(self, service: str, environment: str) -> bool:
        return self._records.delete(_key(service, environment))


def state_store(settings: StackSettings) -> StateStore:
    """The state store in force (:func:`runbook.store.open.store_for`)."""
    return store_for(settings)


def _key(service: str, environment: str) -> str:
    return f"{service}/{environment}"
