"""Docker diagnostics on the real engine: exit code, OOM kill, engine events, the registry
check and the log tail of containers that failed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from runbook import stack
from runbook.adapters.docker_diagnostics import diagnose_container
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
MISSING = "sha256:" + "0" * 64


@pytest.fixture
def client(stack_settings: StackSettings) -> Iterator[docker.DockerClient]:
    engine = stack.docker_client(stack_settings)
    yield engine
    engine.close()


def run_until_exit(client: docker.DockerClient, image: str, command: list[str],
                   **options: object) -> docker.models.containers.Container:
    container = client.containers.run(image, command, name=f"diag-{uuid.uuid4().hex[:8]}",
                                      detach=True, **options)
    deadline = time.monotonic() + 60
    while container.status not in ("exited", "dead") and time.monotonic() < deadline:
        time.sleep(0.2)
        container.reload()
    return container


def test_exit_code_events_registry_and_log_tail(client: docker.DockerClient,
                                                stack_settings: StackSettings) -> None:
    container = run_until_exit(client, stack_settings.base_image,
                               ["python3", "-c", "print('config missing'); raise SystemExit(3)"])
    try:
        found = diagnose_container(client, container, f"{stack_settings.registry}/nope@{MISSING}",
                                   10)
    finally:
        container.remove(force=True)

    assert (found.status, found.exit_code, found.oom_killed) == ("exited", 3, False)
    assert any(line.endswith("die (exit code 3)") for line in found.events), found.events
    assert any(" start" in line for line in found.events)
    assert found.image_in_registry is False
    assert found.log_tail == "config missing"
    summary = found.summary()
    assert "exit code 3" in summary and "NOT found in the registry" in summary
    assert "config missing" in summary


def test_a_container_over_its_memory_limit_is_reported_oom_killed(
    client: docker.DockerClient, stack_settings: StackSettings,
) -> None:
    container = run_until_exit(client, stack_settings.base_image,
                               ["python3", "-c", "b = bytearray(200 * 1024 * 1024)"],
                               mem_limit=32 * 1024 * 1024, memswap_limit=32 * 1024 * 1024)
    try:
        found = diagnose_container(client, container, "", 5)
    finally:
        container.remove(force=True)

    assert found.oom_killed and found.exit_code == 137, found
    assert "OOM-killed" in found.summary()
    assert any("oom" in line for line in found.events), found.events
