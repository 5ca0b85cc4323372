"""The state store's owners on SQLite (a file in tmp_path: no service): outbox delivery,
incidents, baselines, and two writer processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.store import StateStore, default_state_url
from tests import state_owners_contract as contract


@pytest.fixture
def url(tmp_path: Path) -> str:
    return default_state_url(tmp_path)


def test_concurrent_flushes_send_each_alert_once_with_no_lock_held(url: str) -> None:
    contract.check_concurrent_flushes_send_each_alert_once_with_no_lock_held(
        StateStore(url), url)


def test_a_dead_flushers_claim_expires(url: str) -> None:
    contract.check_a_dead_flushers_claim_expires(StateStore(url), url)


def test_a_resolve_never_overtakes_its_trigger(url: str) -> None:
    contract.check_a_resolve_never_overtakes_its_trigger(StateStore(url), url)


def test_a_bad_record_is_quarantined_and_alerting_goes_on(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    contract.check_a_bad_record_is_quarantined_and_alerting_goes_on(StateStore(url), url,
                                                                    caplog)


def test_incident_changes_under_the_row_lock(url: str) -> None:
    contract.check_incident_changes_under_the_row_lock(StateStore(url))


def test_baselines(url: str) -> None:
    contract.check_baselines(StateStore(url))


def test_two_writer_processes_lose_nothing(url: str) -> None:
    contract.check_two_writer_processes_lose_nothing(url, rounds=8)


def test_perf_working_directories_are_bounded(tmp_path: Path) -> None:
    from runbook.models import Slot
    from runbook.settings import StackSettings
    from tasks.perf import KEPT_RUN_DIRS, _run_dir

    settings = StackSettings(state_dir=tmp_path)
    slot = Slot(service="svc", environment="staging", color="blue", revision="r",
                image="x", address="127.0.0.1:1")
    runs = tmp_path / "perf" / "svc" / "staging" / "runs"
    for n in range(KEPT_RUN_DIRS + 5):
        (runs / f"20260101T0000{n:02d}Z_r").mkdir(parents=True)
    fresh = _run_dir(settings, slot)
    fresh.mkdir()
    kept = sorted(path.name for path in runs.iterdir())
    assert len(kept) == KEPT_RUN_DIRS and fresh.name in kept
    assert "20260101T000000Z_r" not in kept  # the oldest went first
