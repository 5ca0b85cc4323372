"""One deploy at a time per service and environment, on the local Prefect server."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from flows.locks import deploy_limit_name, one_deploy_at_a_time
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
WAIT_S = 60
# Per-run signals, keyed by a name the flow gets as a parameter.
acquired: dict[str, threading.Event] = {}
release: dict[str, threading.Event] = {}
spans: dict[str, tuple[float, float]] = {}


@flow
def hold_deploy_slot(service: str, environment: str, key: str) -> None:
    """Take the slot, say so, and keep it until the test releases this run."""
    with one_deploy_at_a_time(service, environment, WAIT_S, StackSettings()):
        started = time.time()
        acquired[key].set()
        release[key].wait(WAIT_S)
        spans[key] = (started, time.time())


def _start(service: str, environment: str, key: str) -> threading.Thread:
    acquired[key], release[key] = threading.Event(), threading.Event()
    thread = threading.Thread(target=hold_deploy_slot, args=(service, environment, key))
    thread.start()
    return thread


@pytest.fixture
def service(stack_settings: StackSettings) -> Iterator[str]:
    name = f"lock-{uuid.uuid4().hex[:6]}"
    yield name
    with get_client(sync_client=True) as client:
        for environment in ("staging", "production"):
            with contextlib.suppress(ObjectNotFound):
                    client.delete_global_concurrency_limit_by_name(
                    deploy_limit_name(name, environment))


def test_same_environment_waits_other_environment_does_not(service: str) -> None:
    first = _start(service, "staging", "first")
    assert acquired["first"].wait(WAIT_S), "the first staging run never got the slot"
    second = _start(service, "staging", "second")

    # Production is not blocked: it takes and leaves its own slot while staging is held.
    production = _start(service, "production", "production")
    release["production"].set()
    production.join(WAIT_S)
    assert "production" in spans
    assert not acquired["second"].is_set(), "two staging runs held the slot at once"

    release["first"].set()
    first.join(WAIT_S)
    assert acquired["second"].wait(WAIT_S), "the second staging run never got the slot"
    release["second"].set()
    second.join(WAIT_S)
    assert spans["first"][1] <= spans["second"][0]
    assert spans["production"][1] <= spans["first"][1]


def test_a_missing_limit_is_created_with_limit_one(service: str) -> None:
    run = _start(service, "production", "alone")
    release["alone"].set()
    run.join(WAIT_S)
    assert acquired["alone"].is_set()
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(
            deploy_limit_name(service, "production"))
    assert limit.limit == 1
    assert limit.active_slots == 0


HOLDER = """
import sys, time
from prefect import flow
from flows.locks import one_deploy_at_a_time
from runbook.settings import StackSettings

@flow
def hold_and_hang(service: str) -> None:
    with one_deploy_at_a_time(service, "staging", 60, StackSettings()):
        print("held", flush=True)
        time.sleep(600)

hold_and_hang(sys.argv[1])
"""
REPO = Path(__file__).resolve().parents[2]
SLOT_FREE_WITHIN_S = 60  # issue 12: a dead holder's slot is free within a minute


def test_the_slot_of_a_killed_holder_is_free_within_a_minute(
    service: str, stack_settings: StackSettings,
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from runbook.release_record import state_store
    from runbook.slots import SlotHolders

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, service], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        recorded = SlotHolders(state_store(stack_settings)).get(
            deploy_limit_name(service, "staging"))
        assert recorded is not None and recorded.flow_run_id
    finally:
        holder.send_signal(signal.SIGKILL)  # as an OOM kill or a lost worker pod does
        holder.wait(10)
    killed = time.monotonic()

    with one_deploy_at_a_time(service, "staging", SLOT_FREE_WITHIN_S * 2,
                              StackSettings()):
        free_after_s = time.monotonic() - killed
    print(f"slot of a SIGKILLed holder free after {free_after_s:.1f} s")

    assert free_after_s < SLOT_FREE_WITHIN_S
    with get_client(sync_client=True) as client:
        dead = client.read_flow_run(uuid.UUID(recorded.flow_run_id))
        assert dead.state is not None and dead.state.name == "Crashed"
        limit = client.read_global_concurrency_limit_by_name(
            deploy_limit_name(service, "staging"))
    assert limit.active_slots == 0
