"""tests/unit uses no service: its guard refuses every connection to the local stack."""

from __future__ import annotations

import socket

import pytest

from runbook.settings import StackSettings


@pytest.mark.parametrize("port", ["prefect_port", "registry_port", "pushgateway_port"])
def test_a_unit_test_cannot_reach_the_stack(port: str) -> None:
    settings = StackSettings()
    with socket.socket() as sock, pytest.raises(AssertionError, match="must not use the stack"):
        sock.connect((settings.host, getattr(settings, port)))


def test_a_test_local_server_is_still_reachable() -> None:
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client.connect(server.getsockname())
