"""tests/unit touches no service: a connection from the test process to any port of the
local stack (or the Docker engine's socket) fails the test that made it. Test-local servers
(pytest-httpserver, aiosmtpd on a free port) are still allowed: they belong to the test."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from runbook.settings import StackSettings


class StackConnection(AssertionError):
    """A unit test reached a service of the shared stack."""


def _stack_addresses(settings: StackSettings) -> tuple[set[tuple[str, int]], str]:
    ports = {settings.registry_port, settings.prometheus_port, settings.alertmanager_port,
             settings.pushgateway_port, settings.prefect_port, settings.receiver_port,
             settings.router_metrics_port}
    hosts = {settings.host, "localhost", "127.0.0.1"}
    return {(host, port) for host in hosts for port in ports}, \
        settings.docker_host.removeprefix("unix://")


@pytest.fixture(autouse=True)
def _no_stack_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    forbidden, docker_socket = _stack_addresses(StackSettings())
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        inet = isinstance(address, tuple) and (str(address[0]), int(address[1])) in forbidden
        if inet or (isinstance(address, str) and address == docker_socket):
            raise StackConnection(f"tests/unit must not use the stack: connect to {address}")
        connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield
