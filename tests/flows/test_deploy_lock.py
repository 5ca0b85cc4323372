"""One deploy at a time per service and environment, on the local Prefect server."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from flows.locks import deploy_limit_name, one_deploy_at_a_time
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
HOLD_S = 2.0


@flow
def hold_deploy_slot(service: str, environment: str) -> tuple[float, float]:
    with one_deploy_at_a_time(service, environment, timeout_s=60):
        started = time.time()
        time.sleep(HOLD_S)
        return started, time.time()


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
    runs = [("staging", "a"), ("staging", "b"), ("production", "c")]
    spans: dict[str, tuple[float, float]] = {}

    def run(environment: str, key: str) -> None:
        spans[key] = hold_deploy_slot(service, environment)

    threads = [threading.Thread(target=run, args=r) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(spans) == {"a", "b", "c"}
    first, second = sorted([spans["a"], spans["b"]])
    assert first[1] <= second[0], f"staging runs overlapped: {first} {second}"
    # Production ran while one of the staging runs held the staging slot.
    production = spans["c"]
    assert any(p[0] < production[1] and production[0] < p[1] for p in (first, second))


def test_a_missing_limit_is_created_with_limit_one(service: str) -> None:
    hold_deploy_slot(service, "production")
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(
            deploy_limit_name(service, "production"))
    assert limit.limit == 1
    assert limit.active_slots == 0
