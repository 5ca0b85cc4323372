"""A typed face for one kind of document: a pydantic model in, the same model out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from runbook.store.engine import StateStore, Transaction
from runbook.store.layout import QUARANTINE

Model = TypeVar("Model", bound=BaseModel)
log = logging.getLogger(__name__)


@dataclass
class Held(Generic[Model]):
    """A value under its row lock: set ``value`` (None deletes) and it is written on exit."""

    value: Model | None


class Collection(Generic[Model]):
    """Documents of one ``kind``, each a ``model``.

    A stored body that no longer validates (an older or damaged record) is moved to the
    ``quarantine`` kind with a warning, so one bad record never stops the rest: reads
    answer as if it were not there, and a person can still look at it
    (``items("quarantine")``).

    :meth:`within` binds the collection to a caller's transaction, so writes to several
    kinds (an alert, its incident, its outbox entry) commit together or not at all.
    """

    def __init__(self, store: StateStore, kind: str, model: type[Model],
                 tx: Transaction | None = None) -> None:
        self.store, self.kind, self.model = store, kind, model
        self._bound = tx

    def within(self, tx: Transaction) -> Collection[Model]:
        """The same collection, reading and writing inside ``tx``."""
        return Collection(self.store, self.kind, self.model, tx)

    def get(self, key: str, *, lock: bool = False) -> Model | None:
        """The value, or None. ``lock`` (inside :meth:`within`): hold the row lock until
        the transaction ends."""
        with self._tx() as tx:
            document = tx.get(self.kind, key, lock=lock)
            return self._parse(tx, key, document.body) if document else None

    def put(self, key: str, value: Model) -> None:
        with self._tx() as tx:
            tx.put(self.kind, key, _body(value))

    def insert(self, key: str, value: Model) -> bool:
        """Store unless the key exists; True when this call created it."""
        with self._tx() as tx:
            return tx.insert(self.kind, key, _body(value))

    def delete(self, key: str) -> bool:
        with self._tx() as tx:
            return tx.delete(self.kind, key)

    def items(self, prefix: str = "") -> list[tuple[str, Model]]:
        with self._tx() as tx:
            parsed = [(key, self._parse(tx, key, body))
                      for key, body in tx.items(self.kind, prefix)]
        return [(key, value) for key, value in parsed if value is not None]

    def values(self, prefix: str = "") -> list[Model]:
        return [value for _key, value in self.items(prefix)]

    def keys(self, prefix: str = "") -> list[str]:
        """Keys only, by key (bodies are not validated)."""
        with self._tx() as tx:
            return [key for key, _body in tx.items(self.kind, prefix)]

    @contextmanager
    def update(self, key: str, default: Model | None = None) -> Iterator[Held[Model]]:
        """Read-modify-write under the row lock. Give ``default`` when the key may not
        exist yet: it is created first, so two workers racing on a new key still take
        turns instead of the last write winning."""
        with self._tx() as tx:
            if default is not None:
                tx.insert(self.kind, key, _body(default))
            document = tx.get(self.kind, key, lock=True)
            held = Held(self._parse(tx, key, document.body) if document else None)
            yield held
            if held.value is None:
                if document is not None:
                    tx.delete(self.kind, key)
            else:
                tx.put(self.kind, key, _body(held.value))

    @contextmanager
    def _tx(self) -> Iterator[Transaction]:
        if self._bound is not None:
            yield self._bound
        else:
            with self.store.transaction() as tx:
                yield tx

    def _parse(self, tx: Transaction, key: str, body: dict[str, Any]) -> Model | None:
        try:
            return self.model.model_validate(body)
        except ValidationError as exc:
            log.warning("state store: %s/%s does not validate as %s (%d error(s)): "
                        "quarantined", self.kind, key, self.model.__name__, exc.error_count())
            tx.put(QUARANTINE, f"{self.kind}/{key}", {
                "kind": self.kind, "key": key, "body": body,
                "error": str(exc.errors(include_url=False, include_input=False)[:3]),
                "quarantined_at": datetime.now(UTC).isoformat(),
            })
            tx.delete(self.kind, key)
            return None


def _body(value: BaseModel) -> dict[str, Any]:
    return value.model_dump(mode="json")
