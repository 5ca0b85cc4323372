"""Who holds a deploy slot, and when a holder counts as gone (pure decision + its record).

Prefect's global concurrency slots are leases (``flows/locks.py``). A holder killed with
SIGKILL renews nothing, but its lease lives on for at least 60 s (the server's minimum)
plus up to one pass of the lease repossessor (15 s), and Prefect never learns that a local
process died: its flow run stays ``Running``. So the holder also writes a heartbeat here
every few seconds, and a run waiting for the slot releases the lease of a holder whose
flow run is in a final state or whose heartbeat stopped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from runbook.store import Collection, StateStore, layout

KIND = layout.kind(
    "deploy-slot", key="<limit name>", owner="runbook.slots (flows/locks.py)",
    deletable="when no run holds the slot (deleted on release)",
)

HEARTBEAT_S = 3.0
"""How often a holder says it is alive."""
STALE_AFTER_S = 25.0
"""A holder silent this long is gone: eight missed heartbeats, so a busy machine (2 cores
shared by several runs) does not lose a live holder its slot, and a dead one's slot is
free well within a minute."""


class SlotHolder(BaseModel):
    limit: str
    lease_id: str
    flow_run_id: str | None
    heartbeat_at: datetime


def holder_gone(holder: SlotHolder, now: datetime, run_final: bool,
                stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether the holder can no longer be running (pure).

    Args:
        holder: the recorded holder.
        now: the time of the check (UTC).
        run_final: Prefect says the holder's flow run is in a final state.
        stale_after_s: heartbeat silence that means the holder died.
    """
    return run_final or now - holder.heartbeat_at > timedelta(seconds=stale_after_s)


class SlotHolders:
    """The holder records of one state store."""

    def __init__(self, store: StateStore) -> None:
        self._holders = Collection(store, KIND, SlotHolder)

    def get(self, limit: str) -> SlotHolder | None:
        return self._holders.get(limit)

    def hold(self, limit: str, lease_id: str, flow_run_id: str | None) -> None:
        self._holders.put(limit, SlotHolder(limit=limit, lease_id=lease_id,
                                            flow_run_id=flow_run_id,
                                            heartbeat_at=datetime.now(UTC)))

    def beat(self, limit: str, lease_id: str) -> bool:
        """Refresh the heartbeat; False when the record is no longer this lease's (it was
        reclaimed: the holder must stop moving traffic)."""
        with self._holders.update(limit) as held:
            if held.value is None or held.value.lease_id != lease_id:
                return False
            held.value = held.value.model_copy(update={"heartbeat_at": datetime.now(UTC)})
            return True

    def release(self, limit: str, lease_id: str) -> None:
        """Forget the holder, unless another lease holds the slot by now."""
        with self._holders.update(limit) as held:
            if held.value is not None and held.value.lease_id == lease_id:
                held.value = None
