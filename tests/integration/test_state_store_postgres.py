"""The state store's contract on a real PostgreSQL (a private cluster per session)."""

from __future__ import annotations

import uuid

import pytest

from runbook.store import StateStore
from tests import store_contract

pytestmark = pytest.mark.stack


def test_documents(postgres_url: str) -> None:
    store = StateStore(postgres_url)
    for key, _ in store.items("t-doc"):
        store.delete("t-doc", key)
    store_contract.check_documents(store)


def test_failed_block_writes_nothing(postgres_url: str) -> None:
    store = StateStore(postgres_url)
    store.delete("t-atomic", "other")
    store_contract.check_failed_block_writes_nothing(store)


def test_typed_collection_skips_bad_records(postgres_url: str) -> None:
    store_contract.check_typed_collection(StateStore(postgres_url))


def test_no_lost_update_across_threads(postgres_url: str) -> None:
    store_contract.check_no_lost_update_across_threads(StateStore(postgres_url),
                                                       uuid.uuid4().hex)


def test_no_lost_update_across_processes(postgres_url: str) -> None:
    store_contract.check_no_lost_update_across_processes(postgres_url, uuid.uuid4().hex)


def test_lock_wait_has_deadline(postgres_url: str) -> None:
    store_contract.check_lock_wait_has_deadline(postgres_url)
