"""Incidents in the state store: the I/O half of :mod:`runbook.incidents`.

Kind ``incident`` (by id) and its index ``incident-open`` (the open incident of each dedup
key); see :mod:`runbook.store.layout`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from runbook.errors import ConfigurationError
from runbook.incidents import Incident
from runbook.store import Collection, StateStore, as_store
from runbook.store.engine import Transaction
from runbook.store.layout import INCIDENT, INCIDENT_OPEN


class OpenIncident(BaseModel):
    """Index entry: the open incident of one dedup key."""

    id: str


class IncidentStore:
    """Incidents in the state store (kind ``incident``, by id) with an index of the open
    one per dedup key (``incident-open``). Every change of a stored incident is a
    read-modify-write under its row lock (:meth:`change`), so an acknowledge and a resolve
    arriving together both land."""

    def __init__(self, state: StateStore | Path, tx: Transaction | None = None) -> None:
        self.store = as_store(state)
        self._records = Collection(self.store, INCIDENT, Incident, tx)
        self._open = Collection(self.store, INCIDENT_OPEN, OpenIncident, tx)
        self._tx = tx

    def within(self, tx: Transaction) -> IncidentStore:
        """The same store, reading and writing inside ``tx``."""
        return IncidentStore(self.store, tx)

    def save(self, incident: Incident) -> None:
        with self._bound() as bound:
            bound._records.put(incident.id, incident)
            bound._index(incident)

    def get(self, incident_id: str) -> Incident:
        found = self._records.get(_checked_id(incident_id))
        if found is None:
            raise ConfigurationError(f"no incident {incident_id!r}")
        return found

    def change(self, incident_id: str, change: Callable[[Incident], Incident]
               ) -> tuple[Incident, Incident]:
        """Apply ``change`` to the stored incident under its row lock; (before, after).

        Raises:
            ConfigurationError: no such incident, or whatever ``change`` raises (nothing
                is written then).
        """
        with self._bound() as bound:
            found = bound._records.get(_checked_id(incident_id))
            if found is None:
                raise ConfigurationError(f"no incident {incident_id!r}")
            # Locks in the order publishing takes them (index, then record): no deadlock.
            bound._open.get(found.dedup_key, lock=True)
            return bound._change_locked(incident_id, change)

    def _change_locked(self, incident_id: str, change: Callable[[Incident], Incident]
                       ) -> tuple[Incident, Incident]:
        with self._records.update(incident_id) as held:
            if held.value is None:
                raise ConfigurationError(f"no incident {incident_id!r}")
            before = held.value
            held.value = change(before)
            self._index(held.value)
            return before, held.value

    def all(self) -> list[Incident]:
        return sorted(self._records.values(), key=lambda incident: incident.opened_at)

    def open_for(self, dedup_key: str, *, lock: bool = False) -> Incident | None:
        """The open incident an alert with this key belongs to, if any. ``lock`` (inside
        :meth:`within`): hold its row lock, to change it in the same transaction."""
        entry = self._open.get(dedup_key, lock=lock)
        found = self._records.get(entry.id, lock=lock) if entry else None
        return found if found is not None and found.is_open else None

    def _index(self, incident: Incident) -> None:
        if incident.is_open:
            entry = self._open.get(incident.dedup_key)
            if entry is None or entry.id != incident.id:
                self._open.put(incident.dedup_key, OpenIncident(id=incident.id))
            return
        entry = self._open.get(incident.dedup_key, lock=True)
        if entry is not None and entry.id == incident.id:
            self._open.delete(incident.dedup_key)

    @contextmanager
    def _bound(self) -> Iterator[IncidentStore]:
        """This store inside a transaction: the caller's, or one of its own."""
        if self._tx is not None:
            yield self
        else:
            with self.store.transaction() as tx:
                yield self.within(tx)


def _checked_id(incident_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]{1,80}", incident_id):
        raise ConfigurationError(f"not an incident id: {incident_id!r}")
    return incident_id
