"""The state store: everything runbook keeps between runs, behind one SQLAlchemy database.

SQLite by default (``<state_dir>/state.db``), PostgreSQL when ``state.url`` in
``runbook.yaml`` says so, so every worker of a work pool sees the same state.

The model is deliberately small: a *document* is a JSON body under ``(kind, key)``; each
kind's owner gives it a typed face with :class:`Collection` (a pydantic model per kind). What
is persisted, by whom and in which shape is listed in :mod:`runbook.store.layout`.

Every read-modify-write goes through :meth:`StateStore.update` (or
:meth:`StateStore.transaction`), which holds a row lock until commit (PostgreSQL
``SELECT ... FOR UPDATE``; SQLite ``BEGIN IMMEDIATE``), so two workers never lose an update.
Every lock wait has a deadline (``lock_timeout_s``).

Example:
    >>> store = StateStore("sqlite:///:memory:")
    >>> store.put("baseline", "agent-api/staging", {"revision": "r1"})
    >>> with store.update("baseline", "agent-api/staging") as doc:
    ...     doc.body["revision"] = "r2"
    >>> store.get("baseline", "agent-api/staging")
    {'revision': 'r2'}
"""

from runbook.store.collection import Collection
from runbook.store.engine import (
    Document,
    StateStore,
    StoreUnavailable,
    default_state_url,
    open_store,
)
from runbook.store.open import as_store, store_for

__all__ = [
    "Collection",
    "Document",
    "StateStore",
    "StoreUnavailable",
    "as_store",
    "default_state_url",
    "open_store",
    "store_for",
]
