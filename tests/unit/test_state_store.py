"""The state store on SQLite (a file in tmp_path: no service)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from runbook.store import StateStore, StoreUnavailable, default_state_url
from tests import store_contract


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return default_state_url(tmp_path / "state")


def test_documents(sqlite_url: str) -> None:
    store_contract.check_documents(StateStore(sqlite_url))


def test_failed_block_writes_nothing(sqlite_url: str) -> None:
    store_contract.check_failed_block_writes_nothing(StateStore(sqlite_url))


def test_typed_collection_skips_bad_records(sqlite_url: str) -> None:
    store_contract.check_typed_collection(StateStore(sqlite_url))


def test_no_lost_update_across_threads(sqlite_url: str) -> None:
    store_contract.check_no_lost_update_across_threads(StateStore(sqlite_url), "k")


def test_no_lost_update_across_processes(sqlite_url: str) -> None:
    store_contract.check_no_lost_update_across_processes(sqlite_url, "k")


def test_lock_wait_has_deadline(sqlite_url: str) -> None:
    store_contract.check_lock_wait_has_deadline(sqlite_url)


def test_schema_survives_reopen(sqlite_url: str) -> None:
    StateStore(sqlite_url).put("t", "k", {"v": 1})
    assert StateStore(sqlite_url).get("t", "k") == {"v": 1}


def test_append_reads_back_in_order(sqlite_url: str) -> None:
    store = StateStore(sqlite_url)
    for number in range(5):
        store.append("t-log", {"n": number})
    assert [body["n"] for _key, body in store.items("t-log")] == [0, 1, 2, 3, 4]


def test_password_never_in_messages() -> None:
    # Nothing listens on port 9: the connect fails; the message must not carry the secret.
    with pytest.raises(StoreUnavailable) as caught:
        StateStore("postgresql://runbook@127.0.0.1:9/db",
                   password=SecretStr("hunter2-secret"), lock_timeout_s=1)
    assert "hunter2-secret" not in str(caught.value)
    assert "127.0.0.1:9" in str(caught.value)


def test_unsupported_database_is_named() -> None:
    with pytest.raises(ValueError, match="mysql"):
        StateStore("mysql://x@localhost/db")


def test_store_for_defaults_to_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    from runbook.config import StateConfig
    from runbook.settings import StackSettings
    from runbook.store import store_for

    settings = StackSettings(state_dir=tmp_path / "state")
    store = store_for(settings)
    assert store.url == default_state_url(tmp_path / "state")
    assert store_for(settings, StateConfig()) is store  # one engine per URL and process
    assert oct((tmp_path / "state" / "state.db").stat().st_mode & 0o777) == "0o600"
    other = store_for(settings, StateConfig(url=f"sqlite:///{tmp_path / 'other.db'}"))
    assert other is not store and other.url.endswith("other.db")


def test_store_for_reads_the_password_from_the_named_variable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from runbook.config import StateConfig
    from runbook.errors import ConfigurationError
    from runbook.settings import StackSettings
    from runbook.store import store_for

    settings = StackSettings(state_dir=tmp_path)
    config = StateConfig(url="postgresql://runbook@127.0.0.1:9/db",
                         password_env="RUNBOOK_TEST_STATE_PASSWORD")
    monkeypatch.delenv("RUNBOOK_TEST_STATE_PASSWORD", raising=False)
    with pytest.raises(ConfigurationError, match="RUNBOOK_TEST_STATE_PASSWORD"):
        store_for(settings, config)
    monkeypatch.setenv("RUNBOOK_TEST_STATE_PASSWORD", "hunter2-secret")
    with pytest.raises(StoreUnavailable) as caught:  # nothing listens on port 9
        store_for(settings, config)
    assert "hunter2-secret" not in str(caught.value)


def test_a_read_does_not_wait_for_a_writer(sqlite_url: str) -> None:
    """Reads take no write lock: while another store holds one (a read-modify-write in
    progress), a read returns the last committed body at once instead of queueing."""
    writer = StateStore(sqlite_url)
    reader = StateStore(sqlite_url, lock_timeout_s=0.5)
    writer.put("t-read", "k", {"n": 0})
    with writer.update("t-read", "k") as doc:
        doc.body["n"] = 1
        assert reader.get("t-read", "k") == {"n": 0}
        assert reader.items("t-read") == [("k", {"n": 0})]
    assert reader.get("t-read", "k") == {"n": 1}
    writer.dispose()
    reader.dispose()
