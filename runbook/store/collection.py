"""A typed face for one kind of document: a pydantic model in, the same model out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from runbook.store.engine import StateStore

Model = TypeVar("Model", bound=BaseModel)
log = logging.getLogger(__name__)


@dataclass
class Held(Generic[Model]):
    """A value under its row lock: set ``value`` (None deletes) and it is written on exit."""

    value: Model | None


class Collection(Generic[Model]):
    """Documents of one ``kind``, each a ``model``.

    A stored body that no longer validates (an older or damaged record) is reported in the
    log and skipped by :meth:`values`, so one bad record never stops the rest; :meth:`get`
    answers None for it.
    """

    def __init__(self, store: StateStore, kind: str, model: type[Model]) -> None:
        self.store, self.kind, self.model = store, kind, model

    def get(self, key: str) -> Model | None:
        return self._parse(key, self.store.get(self.kind, key))

    def put(self, key: str, value: Model) -> None:
        self.store.put(self.kind, key, value.model_dump(mode="json"))

    def insert(self, key: str, value: Model) -> bool:
        """Store unless the key exists; True when this call created it."""
        return self.store.insert(self.kind, key, value.model_dump(mode="json"))

    def delete(self, key: str) -> bool:
        return self.store.delete(self.kind, key)

    def items(self, prefix: str = "") -> list[tuple[str, Model]]:
        parsed = ((key, self._parse(key, body)) for key, body in
                  self.store.items(self.kind, prefix))
        return [(key, value) for key, value in parsed if value is not None]

    def values(self, prefix: str = "") -> list[Model]:
        return [value for _key, value in self.items(prefix)]

    @contextmanager
    def update(self, key: str, default: Model | None = None) -> Iterator[Held[Model]]:
        """Read-modify-write under the row lock. Give ``default`` when the key may not
        exist yet: it is created first, so two workers racing on a new key still take
        turns instead of the last write winning."""
        with self.store.transaction() as tx:
            if default is not None:
                tx.insert(self.kind, key, default.model_dump(mode="json"))
            document = tx.get(self.kind, key, lock=True)
            held = Held(self._parse(key, document.body if document else None))
            yield held
            if held.value is None:
                if document is not None:
                    tx.delete(self.kind, key)
            else:
                tx.put(self.kind, key, held.value.model_dump(mode="json"))

    def _parse(self, key: str, body: dict | None) -> Model | None:
        if body is None:
            return None
        try:
            return self.model.model_validate(body)
        except ValidationError as exc:
            log.warning("state store: %s/%s does not validate as %s, skipped (%d error(s))",
                        self.kind, key, self.model.__name__, exc.error_count())
            return None
