"""The durable outbox: every alert is written here before any channel is tried, and leaves
only when each of its channels has taken it. Per-channel delivery is recorded, so a channel
that took it once is never sent it again.

In the state store (:mod:`runbook.store.layout`): ``alert-outbox`` (waiting entries),
``alert-sent`` (done, kept ``SENT_RETENTION``), ``alert-open`` (alerts triggered and not
yet resolved, by dedup key).

Delivery is claim, send, record: a flusher *claims* one entry's channel under the entry's
row lock (a lease, so a flusher that dies frees it), sends with no lock or transaction
held, then *records* the result under the lock. Two flushers (pipeline runs, the receiver,
the CLI, on any worker) therefore never send one entry to one channel twice, and a slow or
rate-limited channel never holds anyone else up.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from runbook.alerts.models import Alert, Channel
from runbook.store import Collection, StateStore, as_store
from runbook.store.engine import Transaction
from runbook.store.layout import ALERT_OPEN, ALERT_OUTBOX, ALERT_SENT

SENT_RETENTION = timedelta(days=30)
"""How long delivered entries stay readable (``done()``) before flushes prune them."""


class Delivery(BaseModel):
    """One channel's record for one alert."""

    channel: Channel
    delivered_at: datetime | None = None
    attempts: int = 0
    last_error: str = ""
    claimed_by: str | None = None
    """The flusher sending it right now, if any."""
    claimed_until: datetime | None = None
    """Its claim's lease: after this, another flusher may send (the holder died)."""


class OutboxEntry(BaseModel):
    id: str
    alert: Alert
    enqueued_at: datetime
    deliveries: dict[Channel, Delivery] = Field(default_factory=dict)

    def delivered(self, channel: Channel) -> bool:
        record = self.deliveries.get(channel)
        return record is not None and record.delivered_at is not None

    def claimed(self, channel: Channel, now: datetime) -> bool:
        """Another flusher holds a live claim on ``channel``."""
        record = self.deliveries.get(channel)
        return (record is not None and record.claimed_until is not None
                and record.claimed_until > now)

    def record(self, channel: Channel, error: str | None) -> None:
        """Count one attempt on ``channel``; no error means it was delivered now. The claim,
        if any, ends."""
        record = self.deliveries.setdefault(channel, Delivery(channel=channel))
        record.attempts += 1
        record.claimed_by = record.claimed_until = None
        if error is None:
            record.delivered_at = datetime.now(UTC)
            record.last_error = ""
        else:
            record.last_error = error


class Claim(StrEnum):
    """What asking for one entry's channel gave."""

    CLAIMED = "claimed"  # yours to send until the lease ends
    DELIVERED = "delivered"  # someone delivered it already
    BUSY = "busy"  # another flusher is sending it
    GONE = "gone"  # the entry left the outbox (completed elsewhere)


class Outbox:
    """Waiting and sent alerts, and the open ones, in the state store."""

    def __init__(self, state: StateStore | Path) -> None:
        self.store = as_store(state)
        self.waiting = Collection(self.store, ALERT_OUTBOX, OutboxEntry)
        self.sent = Collection(self.store, ALERT_SENT, OutboxEntry)
        self.open = Collection(self.store, ALERT_OPEN, Alert)

    def add(self, alert: Alert, tx: Transaction | None = None) -> OutboxEntry:
        """Queue the alert (inside ``tx`` when given, so it commits with its cause)."""
        now = datetime.now(UTC)
        entry = OutboxEntry(id=f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}", alert=alert,
                            enqueued_at=now)
        (self.waiting.within(tx) if tx else self.waiting).put(entry.id, entry)
        return entry

    def save(self, entry: OutboxEntry) -> None:
        self.waiting.put(entry.id, entry)

    def pending(self) -> list[OutboxEntry]:
        """Waiting entries, oldest first (a resolve never overtakes its trigger)."""
        return sorted(self.waiting.values(), key=lambda entry: (entry.enqueued_at, entry.id))

    def done(self) -> list[OutboxEntry]:
        return sorted(self.sent.values(), key=lambda entry: (entry.enqueued_at, entry.id))

    def claim(self, entry_id: str, channel: Channel, owner: str, lease_s: float) -> Claim:
        """Take ``channel`` of the entry for ``lease_s`` seconds, under its row lock."""
        with self.waiting.update(entry_id) as held:
            entry = held.value
            if entry is None:
                return Claim.GONE
            now = datetime.now(UTC)
            if entry.delivered(channel):
                return Claim.DELIVERED
            if entry.claimed(channel, now):
                return Claim.BUSY
            record = entry.deliveries.setdefault(channel, Delivery(channel=channel))
            record.claimed_by = owner
            record.claimed_until = now + timedelta(seconds=lease_s)
            return Claim.CLAIMED

    def record(self, entry_id: str, channel: Channel, error: str | None) -> OutboxEntry | None:
        """The result of a send, under the row lock; the entry as it is now."""
        with self.waiting.update(entry_id) as held:
            if held.value is not None:
                held.value.record(channel, error)
            return held.value

    def complete(self, entry_id: str, channels: list[Channel]) -> bool:
        """Move the entry to ``alert-sent`` when every one of ``channels`` took it; True
        when it is not waiting any more (also when another flusher moved it first)."""
        with self.store.transaction() as tx:
            waiting = self.waiting.within(tx)
            entry = waiting.get(entry_id, lock=True)
            if entry is None:
                return True
            if not channels or not all(entry.delivered(c) for c in channels):
                return False
            self.sent.within(tx).put(entry_id, entry)
            waiting.delete(entry_id)
            return True

    def prune_sent(self, now: datetime | None = None) -> int:
        """Forget delivered entries older than ``SENT_RETENTION``; how many went."""
        cutoff = f"{(now or datetime.now(UTC)) - SENT_RETENTION:%Y%m%dT%H%M%S%f}"
        # Entry ids start with their enqueue time, so they compare as times.
        old = [key for key in self.sent.keys() if key < cutoff]  # noqa: SIM118
        for key in old:
            self.sent.delete(key)
        return len(old)

    def open_alerts(self) -> dict[str, Alert]:
        """Alerts triggered and not resolved yet, by dedup key."""
        return dict(self.open.items())
