"""The durable outbox: every alert is written here before any channel is tried, and leaves
only when each of its channels has taken it. Per-channel delivery is recorded, so a channel
that took it once is never sent it again.

Layout under ``<state_dir>/alerts``: ``outbox/<id>.json`` (waiting), ``sent/<id>.json``
(done), ``open.json`` (alerts triggered and not yet resolved, by dedup key), ``.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, TypeAdapter

from runbook.alerts.models import Alert, Channel


class Delivery(BaseModel):
    """One channel's record for one alert."""

    channel: Channel
    delivered_at: datetime | None = None
    attempts: int = 0
    last_error: str = ""


class OutboxEntry(BaseModel):
    id: str
    alert: Alert
    enqueued_at: datetime
    deliveries: dict[Channel, Delivery] = Field(default_factory=dict)

    def delivered(self, channel: Channel) -> bool:
        record = self.deliveries.get(channel)
        return record is not None and record.delivered_at is not None

    def record(self, channel: Channel, error: str | None) -> None:
        """Count one attempt on ``channel``; no error means it was delivered now."""
        record = self.deliveries.setdefault(channel, Delivery(channel=channel))
        record.attempts += 1
        if error is None:
            record.delivered_at = datetime.now(UTC)
            record.last_error = ""
        else:
            record.last_error = error


_OPEN = TypeAdapter(dict[str, Alert])


class Outbox:
    """Files, one per alert; written atomically (temporary file + rename)."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "alerts"
        self.waiting = self.root / "outbox"
        self.sent = self.root / "sent"
        for directory in (self.waiting, self.sent):
            directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time across processes (pipeline runs, the receiver, the CLI), so
        two flushes never send the same entry to the same channel."""
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add(self, alert: Alert) -> OutboxEntry:
        now = datetime.now(UTC)
        entry = OutboxEntry(id=f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}", alert=alert,
                            enqueued_at=now)
        self.save(entry)
        return entry

    def save(self, entry: OutboxEntry) -> None:
        _write(self.waiting / f"{entry.id}.json", entry.model_dump_json(indent=2))

    def pending(self) -> list[OutboxEntry]:
        """Waiting entries, oldest first (a resolve never overtakes its trigger)."""
        entries = [OutboxEntry.model_validate_json(p.read_text())
                   for p in self.waiting.glob("*.json")]
        return sorted(entries, key=lambda entry: (entry.enqueued_at, entry.id))

    def done(self) -> list[OutboxEntry]:
        entries = [OutboxEntry.model_validate_json(p.read_text())
                   for p in self.sent.glob("*.json")]
        return sorted(entries, key=lambda entry: (entry.enqueued_at, entry.id))

    def complete(self, entry: OutboxEntry) -> None:
        self.save(entry)
        os.replace(self.waiting / f"{entry.id}.json", self.sent / f"{entry.id}.json")

    def open_alerts(self) -> dict[str, Alert]:
        path = self.root / "open.json"
        return _OPEN.validate_json(path.read_text()) if path.is_file() else {}

    def save_open_alerts(self, alerts: dict[str, Alert]) -> None:
        _write(self.root / "open.json", _OPEN.dump_json(alerts, indent=2).decode())


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
