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
