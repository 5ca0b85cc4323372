"""``DockerTarget.restore`` (``runbook stack up``) against a retire in progress: a container
stopped on purpose is never started again. No engine here: a stand-in client and router
with the calls the target makes, the target's own lock on the state directory."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from runbook.route_table import Route, Server
from runbook.settings import StackSettings
from runbook.targets.docker import LABEL, DockerTarget

SERVER = "green-abc123"


class _Container:
    def __init__(self, status: str) -> None:
        self.name = "shop-staging-green"
        self.status = status
        self.labels = {f"{LABEL}.service": "shop", f"{LABEL}.environment": "staging",
                       f"{LABEL}.color": "green", f"{LABEL}.revision": "abc123",
                       f"{LABEL}.image": "registry/shop@sha256:" + "0" * 64,
                       f"{LABEL}.server": SERVER}
        self.ports = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41001"}]}
        self.starts = 0

    def reload(self) -> None:
        return None

    def start(self) -> None:
        self.starts += 1
        self.status = "running"


class _Containers:
    def __init__(self, container: _Container) -> None:
        self.container = container

    def list(self, **_: Any) -> list[_Container]:
        return [self.container]


class _Client:
    def __init__(self, container: _Container) -> None:
        self.containers = _Containers(container)


class _Router:
    """The route table as the target reads it: ``routes()`` once at the start of a restore,
    ``route()`` for the state now."""

    def __init__(self, routed: bool) -> None:
        self.now = self._route(routed)
        self.addresses: list[tuple[str, str]] = []

    @staticmethod
    def _route(routed: bool) -> Route:
        servers = [Server(name=SERVER, address="127.0.0.1:40000")] if routed else []
        return Route(service="shop", environment="staging", port=18001, preview_port=18002,
                     servers=servers)

    def routes(self) -> list[Route]:
        return [self.now]

    def route(self, service: str, environment: str) -> Route | None:
        return self.now

    def set_address(self, service: str, environment: str, name: str, address: str) -> None:
        self.addresses.append((name, address))


def _target(tmp_path: Path, container: _Container, router: _Router) -> DockerTarget:
    target = DockerTarget(StackSettings(state_dir=tmp_path), _Client(container),  # type: ignore[arg-type]
                          router)  # type: ignore[arg-type]
    target._wait_healthy = lambda *args: None  # type: ignore[method-assign]
    return target


def test_a_stopped_container_still_routed_is_started_and_readdressed(tmp_path: Path) -> None:
    container, router = _Container("exited"), _Router(routed=True)
    assert _target(tmp_path, container, router).restore() == [SERVER]
    assert container.starts == 1
    assert router.addresses == [(SERVER, "127.0.0.1:41001")]


def test_a_container_retired_after_the_routes_were_read_is_not_started(
    tmp_path: Path,
) -> None:
    """The table read at the start still had the server; by the time the container is
    looked at, ``retire`` has taken it out of the route and stopped it."""
    container, router = _Container("exited"), _Router(routed=True)
    snapshot = router.routes()
    router.routes = lambda: snapshot  # type: ignore[method-assign]
    router.now = router._route(routed=False)
    assert _target(tmp_path, container, router).restore() == []
    assert container.starts == 0 and router.addresses == []


def test_restore_waits_for_a_retire_in_progress_and_then_leaves_its_container(
    tmp_path: Path,
) -> None:
    """``retire`` holds the route's container lock over taking the server out and stopping
    the container; a restore that read the table before it waits, then sees the route as
    the retire left it."""
    container, router = _Container("running"), _Router(routed=True)
    retiring = _target(tmp_path, container, router)
    result: list[list[str]] = []
    with retiring._containers_locked("shop", "staging"):
        container.status = "exited"  # stopped: what restore looks for
        restoring = threading.Thread(
            target=lambda: result.append(_target(tmp_path, container, router).restore()))
        restoring.start()
        restoring.join(timeout=0.5)
        assert restoring.is_alive(), "restore did not wait for the retire's lock"
        router.now = router._route(routed=False)  # the server taken out of the route
    restoring.join(timeout=30)
    assert result == [[]]
    assert container.starts == 0
