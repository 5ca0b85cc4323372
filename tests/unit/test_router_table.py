"""The router's persisted table (no HAProxy: the runtime API is replaced by a recorder)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runbook.router import HAProxyRouter, Route, RouteTable, Server
from runbook.settings import StackSettings


def _router(state: Path, sent: list[str]) -> HAProxyRouter:
    router = HAProxyRouter(StackSettings(state_dir=state))
    router.runtime = (  # type: ignore[method-assign]
        lambda command, route=None: sent.append(command) or "")
    return router


@pytest.fixture
def state(tmp_path: Path) -> Path:
    table = RouteTable(routes={
        f"svc{i}.staging": Route(service=f"svc{i}", environment="staging", port=1000 + i,
                                 preview_port=2000 + i, servers=[
                                     Server(name="blue-r1", address="127.0.0.1:1", enabled=True),
                                     Server(name="green-r2", address="127.0.0.1:2")])
        for i in range(3)})
    writer = HAProxyRouter(StackSettings(state_dir=tmp_path))
    writer.dir.mkdir(parents=True)
    writer._save(table)
    return tmp_path


def test_a_switch_changes_its_route_only_and_every_reader_sees_it(state: Path) -> None:
    sent: list[str] = []
    one, other = _router(state, sent), _router(state, sent)
    before = one._load()
    other.switch("svc1", "staging", "green-r2")
    assert sent == ["enable server svc1.staging/green-r2;disable server svc1.staging/blue-r1"]
    after = one._load()  # a process that read the table before sees the other's write
    assert after.routes["svc1.staging"].live().name == "green-r2"  # type: ignore[union-attr]
    assert {k: v for k, v in after.routes.items() if k != "svc1.staging"} == \
        {k: v for k, v in before.routes.items() if k != "svc1.staging"}
    assert RouteTable.model_validate_json((state / "router" / "routes.json").read_text()) == after


def test_a_failed_change_writes_nothing(state: Path) -> None:
    router = _router(state, [])
    routes_file = state / "router" / "routes.json"
    before = routes_file.read_bytes()
    with pytest.raises(Exception, match="no server"):
        router.switch("svc1", "staging", "red-r9")
    assert routes_file.read_bytes() == before
    assert router.route("svc1", "staging") == RouteTable.model_validate_json(
        before).routes["svc1.staging"]


def test_a_routes_file_written_before_metrics_ports_still_loads(tmp_path: Path) -> None:
    """routes.json from before routes had their own process: no ``metrics_port``."""
    routes = tmp_path / "router" / "routes.json"
    routes.parent.mkdir(parents=True)
    routes.write_text('{"routes": {"svc.staging": {"service": "svc", "environment": '
                      '"staging", "port": 1000, "preview_port": 1001, "servers": []}}}')
    router = HAProxyRouter(StackSettings(state_dir=tmp_path, route_port_min=1000,
                                         route_port_max=1003))
    table = router._load()
    assert table.routes["svc.staging"].metrics_port is None
    assert router._allocate_missing_metrics_ports(table)
    assert table.routes["svc.staging"].metrics_port in {1002, 1003}


def test_a_route_process_serves_its_own_exporter_and_backends(tmp_path: Path) -> None:
    router = HAProxyRouter(StackSettings(state_dir=tmp_path))
    route = Route(service="svc", environment="staging", port=1000, preview_port=1001,
                  metrics_port=1002, servers=[Server(name="blue-r1", address="127.0.0.1:1",
                                                     enabled=True)])
    config = router.render_route(route)
    assert "bind 127.0.0.1:1002" in config and "prometheus-exporter" in config
    assert "backend svc.staging\n" in config and "backend svc.staging.preview\n" in config
    assert "    server blue-r1 127.0.0.1:1\n" in config
    assert "nbthread 1" in config
    assert f"stats socket {router.socket_of('svc', 'staging')} " in config
    assert "backend" not in router.render_main()


def test_a_route_being_removed_does_not_count_as_a_dead_one(state: Path) -> None:
    """A route's process stops before the table forgets it: a reader in between must not
    report the route (and so the stack's router) as down."""
    router = HAProxyRouter(StackSettings(state_dir=state))
    router.route_running = lambda route: route.key != "svc1.staging"  # type: ignore[method-assign]
    remover = HAProxyRouter(StackSettings(state_dir=state))
    looked: list[list[str]] = []
    with remover._locked():  # remove_route: its process stopped, the table not yet saved
        reader = threading.Thread(target=lambda: looked.append(router.not_running()))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive(), "the suspect was not checked again under the lock"
        table = remover._load()
        del table.routes["svc1.staging"]
        remover._save(table)
    reader.join(10)
    assert looked == [[]]


def test_a_dead_route_process_is_reported(state: Path) -> None:
    router = HAProxyRouter(StackSettings(state_dir=state))
    router.route_running = lambda route: route.key != "svc2.staging"  # type: ignore[method-assign]
    assert router.not_running() == ["svc2.staging"]
