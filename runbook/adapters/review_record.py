"""When the runbook was last reviewed: one small document in the state store (kind
``ops-review``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from runbook.store import Collection, StateStore, as_store
from runbook.store.layout import OPS_REVIEW

_KEY = "runbook"


class ReviewRecord(BaseModel):
    last_review: datetime


def _records(state: StateStore | Path) -> Collection[ReviewRecord]:
    return Collection(as_store(state), OPS_REVIEW, ReviewRecord)


def last_review(state: StateStore | Path) -> datetime | None:
    record = _records(state).get(_KEY)
    return record.last_review if record else None


def record_review(state: StateStore | Path, when: datetime) -> None:
    _records(state).put(_KEY, ReviewRecord(last_review=when))
