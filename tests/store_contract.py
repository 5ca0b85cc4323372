"""The state store's contract, run on SQLite (tests/unit) and on a real PostgreSQL
(tests/integration): the same assertions, so both databases behave alike."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from pydantic import BaseModel

from runbook.store import Collection, StateStore, StoreUnavailable


class Counter(BaseModel):
    value: int = 0
    writers: list[str] = []


def check_documents(store: StateStore) -> None:
    assert store.get("t-doc", "a/b") is None
    store.put("t-doc", "a/b", {"x": 1})
    store.put("t-doc", "a/c", {"x": 2})
    store.put("t-doc", "z/a", {"x": 3})
    assert store.get("t-doc", "a/b") == {"x": 1}
    assert [key for key, _ in store.items("t-doc", "a/")] == ["a/b", "a/c"]
    assert store.insert("t-doc", "a/b", {"x": 9}) is False
    assert store.get("t-doc", "a/b") == {"x": 1}
    with store.update("t-doc", "a/b") as doc:
        doc.body["x"] += 10
    assert store.get("t-doc", "a/b") == {"x": 11}
    with store.update("t-doc", "a/c") as doc:
        doc.deleted = True
    assert store.get("t-doc", "a/c") is None
    assert store.delete("t-doc", "z/a") is True
    assert store.delete("t-doc", "z/a") is False


def check_failed_block_writes_nothing(store: StateStore) -> None:
    store.put("t-atomic", "k", {"n": 1})
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.put("t-atomic", "k", {"n": 2})
        tx.put("t-atomic", "other", {"n": 2})
        raise RuntimeError("boom")
    assert store.get("t-atomic", "k") == {"n": 1}
    assert store.get("t-atomic", "other") is None


def check_typed_collection(store: StateStore) -> None:
    counters = Collection(store, "t-typed", Counter)
    counters.put("one", Counter(value=1))
    store.put("t-typed", "broken", {"value": "not a number"})
    assert counters.get("one") == Counter(value=1)
    assert counters.get("broken") is None
    assert counters.values() == [Counter(value=1)]  # the bad record is skipped, not fatal
    with counters.update("one") as held:
        assert held.value is not None
        held.value = held.value.model_copy(update={"value": 2})
    assert counters.get("one") == Counter(value=2)


def _increment(url: str, key: str, times: int, writer: str) -> None:
    store = StateStore(url)
    counters = Collection(store, "t-race", Counter)
    for _ in range(times):
        with counters.update(key, default=Counter()) as held:
            assert held.value is not None
            held.value = Counter(value=held.value.value + 1,
                                 writers=[*held.value.writers, writer])
    store.dispose()


def check_no_lost_update_across_processes(url: str, key: str) -> None:
    """Four processes increment one new key 25 times each: every increment survives."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_increment, args=(url, key, 25, f"w{n}"))
               for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    final = Collection(StateStore(url), "t-race", Counter).get(key)
    assert final is not None
    assert final.value == 100
    assert sorted(set(final.writers)) == ["w0", "w1", "w2", "w3"]


def check_no_lost_update_across_threads(store: StateStore, key: str) -> None:
    counters = Collection(store, "t-race", Counter)

    def work() -> None:
        for _ in range(20):
            with counters.update(key, default=Counter()) as held:
                assert held.value is not None
                held.value = Counter(value=held.value.value + 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    final = counters.get(key)
    assert final is not None and final.value == 80


def check_lock_wait_has_deadline(url: str) -> None:
    """A second writer waiting on a held lock gives up after lock_timeout_s, as a
    StoreUnavailable (transient), instead of waiting forever."""
    holder = StateStore(url)
    waiter = StateStore(url, lock_timeout_s=0.5)
    holder.put("t-lock", "k", {"n": 0})
    with holder.update("t-lock", "k") as doc:
        doc.body["n"] = 1
        with pytest.raises(StoreUnavailable), waiter.update("t-lock", "k") as other:
            other.body["n"] = 2
    assert holder.get("t-lock", "k") == {"n": 1}
    holder.dispose()
    waiter.dispose()
