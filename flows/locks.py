"""One deploy at a time per service and environment, through a Prefect global concurrency
limit: a second run waits for the first; other environments and services hold other limits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists


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
def one_deploy_at_a_time(service: str, environment: str, timeout_s: float) -> Iterator[None]:
    """Hold the service/environment's deploy slot for the duration of the block.

    Args:
        service: The service's name.
        environment: The target environment.
        timeout_s: Deadline for getting the slot; past it ``TimeoutError`` is raised.
    """
    name = deploy_limit_name(service, environment)
    ensure_limit(name)
    get_run_logger().info("waiting for the deploy slot %s (up to %.0f s)", name, timeout_s)
    with concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True):
        yield
