"""One deploy at a time per service and environment, through a Prefect global concurrency
limit: a second run waits for the first; other environments and services hold other limits.

The slot is a Prefect lease (60 s, the server's minimum, renewed every 20 s while the holder
lives), and the holder also writes a heartbeat to the state store (``runbook/slots.py``).
A run waiting for the slot frees it from a holder that is gone, that is whose flow run is in
a final state or whose heartbeat stopped ``STALE_AFTER_S`` ago (a SIGKILLed local process:
Prefect still shows it ``Running``); that holder's flow run is then marked ``Crashed``.
Measured: the slot of a SIGKILLed run is taken by the next run 25-30 s after the kill
(docs/fault-matrix.md); without a waiter, the lease itself expires within 75 s.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder, State
from prefect.exceptions import MissingContextError, ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import Crashed

from runbook.release_record import state_store
from runbook.settings import StackSettings
from runbook.slots import HEARTBEAT_S, SlotHolder, SlotHolders, holder_gone

LEASE_S = 60.0
"""Prefect's shortest lease: what a holder that stops renewing keeps at most (plus up to one
15 s repossessor pass) when nobody waits to reclaim it."""
RENEW_EVERY_S = 20.0
"""Renewal well inside the lease, so two lost renewals in a row still keep it."""
POLL_S = 2.0
"""How often a waiting run asks again (with jitter, so waiters do not ask in step)."""
_LOCKED = 423  # Prefect's answer when every slot of the limit is taken


def deploy_limit_name(service: str, environment: str) -> str:
    """The global concurrency limit guarding one service's deploys to one environment."""
    return f"deploy-{service}-{environment}"


def ensure_limit(name: str, limit: int = 1) -> None:
    """Create the limit when missing: Prefect 3.9 no longer creates limits on first use, and
    an unknown limit would not limit anything. An existing limit is left as its owner set it."""
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=limit)
        )


@contextlib.contextmanager
def one_deploy_at_a_time(service: str, environment: str, timeout_s: float,
                         settings: StackSettings) -> Iterator[None]:
    """Hold the service/environment's deploy slot for the duration of the block.

    Args:
        service: The service's name.
        environment: The target environment.
        timeout_s: Deadline for getting the slot; past it ``TimeoutError`` is raised.
        settings: The run's stack settings (the state store keeping the slot's holders).
    """
    name = deploy_limit_name(service, environment)
    ensure_limit(name)
    holders = SlotHolders(state_store(settings))
    run_id = _current_run_id()
    _logger().info("waiting for the deploy slot %s (up to %.0f s)", name, timeout_s)
    lease_id = _acquire(name, holders, run_id, timeout_s)
    holders.hold(name, lease_id, run_id)
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_alive, args=(name, lease_id, holders, stop),
                              name=f"deploy-slot-{name}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join(timeout=HEARTBEAT_S * 2)
        _release(name, lease_id, holders)


def _acquire(name: str, holders: SlotHolders, run_id: str | None, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id)) if run_id else None
    with get_client(sync_client=True) as client:
        while True:
            try:
                response = client.increment_concurrency_slots_with_lease(
                    names=[name], slots=1, mode="concurrency", lease_duration=LEASE_S,
                    holder=holder)
                return str(response.json()["lease_id"])
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != _LOCKED:
                    raise
            if _reclaim_if_gone(client, name, holders):
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"deploy slot {name} not free within {timeout_s:.0f} s")
            time.sleep(min(remaining, POLL_S * random.uniform(0.75, 1.25)))  # jitter, not crypto


def _reclaim_if_gone(client: SyncPrefectClient, name: str, holders: SlotHolders) -> bool:
    """Free the slot of a holder that can no longer be running; True when it was freed."""
    holder = holders.get(name)
    if holder is None:
        return False  # just acquired and not recorded yet, or held outside runbook
    state = _run_state(client, holder)
    if not holder_gone(holder, datetime.now(UTC), run_final=state is not None
                       and state.is_final()):
        return False
    _logger().warning(
        "deploy slot %s: holder run %s is gone (%s, last heartbeat %s); freeing its slot",
        name, holder.flow_run_id, state.name if state else "unknown state",
        holder.heartbeat_at.isoformat(timespec="seconds"))
    client.release_concurrency_slots_with_lease(UUID(holder.lease_id))
    holders.release(name, holder.lease_id)
    if holder.flow_run_id and state is not None and not state.is_final():
        # Prefect cannot see a killed local process die: say so in the UI.
        client.set_flow_run_state(UUID(holder.flow_run_id), Crashed(
            message=f"stopped heartbeating while holding {name}; its slot was freed"),
            force=True)
    return True


def _run_state(client: SyncPrefectClient, holder: SlotHolder) -> State | None:
    if not holder.flow_run_id:
        return None
    try:
        return client.read_flow_run(UUID(holder.flow_run_id)).state
    except ObjectNotFound:
        return None


def _keep_alive(name: str, lease_id: str, holders: SlotHolders, stop: threading.Event) -> None:
    """Heartbeat every HEARTBEAT_S, lease renewal every RENEW_EVERY_S, until stopped.
    A failed beat or renewal is logged and tried again: the holder is alive."""
    logger = logging.getLogger(__name__)
    last_renewal = time.monotonic()
    with get_client(sync_client=True) as client:
        while not stop.wait(HEARTBEAT_S):
            try:
                if not holders.beat(name, lease_id):
                    logger.error("deploy slot %s was reclaimed from this run (it was silent "
                                 "too long); another run may deploy now", name)
                    return
                if time.monotonic() - last_renewal >= RENEW_EVERY_S:
                    client.renew_concurrency_lease(UUID(lease_id), LEASE_S)
                    last_renewal = time.monotonic()
            except Exception as exc:  # a beat is retried, never fatal
                logger.warning("deploy slot %s: heartbeat failed (%s); retrying", name, exc)


def _release(name: str, lease_id: str, holders: SlotHolders) -> None:
    try:
        holders.release(name, lease_id)
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(UUID(lease_id))
    except Exception as exc:  # the lease expires by itself
        _logger().warning("deploy slot %s not released (%s): it frees itself when its "
                          "%.0f s lease expires", name, exc, LEASE_S)


def _current_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def _logger() -> logging.Logger | logging.LoggerAdapter:  # type: ignore[type-arg]
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
