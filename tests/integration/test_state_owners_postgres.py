"""The state store's owners on a real PostgreSQL (the private cluster of tests/conftest.py):
outbox claims and delivery, incident changes, baselines, and two writer processes of
different services losing nothing (issue 11, "Show it")."""

from __future__ import annotations

import pytest

from runbook.store import StateStore
from tests import state_owners_contract as contract

pytestmark = pytest.mark.stack


def test_concurrent_flushes_send_each_alert_once_with_no_lock_held(postgres_url: str) -> None:
    contract.check_concurrent_flushes_send_each_alert_once_with_no_lock_held(
        StateStore(postgres_url), postgres_url)


def test_a_dead_flushers_claim_expires(postgres_url: str) -> None:
    contract.check_a_dead_flushers_claim_expires(StateStore(postgres_url), postgres_url)


def test_a_resolve_never_overtakes_its_trigger(postgres_url: str) -> None:
    contract.check_a_resolve_never_overtakes_its_trigger(StateStore(postgres_url),
                                                         postgres_url)


def test_a_bad_record_is_quarantined_and_alerting_goes_on(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    contract.check_a_bad_record_is_quarantined_and_alerting_goes_on(
        StateStore(postgres_url), postgres_url, caplog)


def test_incident_changes_under_the_row_lock(postgres_url: str) -> None:
    contract.check_incident_changes_under_the_row_lock(StateStore(postgres_url))


def test_baselines(postgres_url: str) -> None:
    contract.check_baselines(StateStore(postgres_url))


def test_two_writer_processes_lose_nothing(postgres_url: str) -> None:
    contract.check_two_writer_processes_lose_nothing(postgres_url, rounds=15)
