"""The HAProxy router for real: its own state dir and ports, two local HTTP servers."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runbook.router import HAProxyRouter, Route, Server
from runbook.settings import StackSettings


class _Named(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    name = ""

    def do_GET(self) -> None:
        body = self.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A reload closes HAProxy's idle connections to the servers: expected."""


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def _alive(pid: int | None) -> bool:
    return pid is not None and Path(f"/proc/{pid}").exists()


def _serve(name: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = type(f"H{name}", (_Named,), {"name": name})
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def router(tmp_path: Path) -> Iterator[HAProxyRouter]:
    settings = StackSettings(state_dir=tmp_path, router_metrics_port=28405,
                             route_port_min=28000, route_port_max=28099)
    router = HAProxyRouter(settings)
    router.start()
    yield router
    router.stop()


def test_route_ports_are_stable_and_distinct(router: HAProxyRouter) -> None:
    first = router.ensure_route("svc", "staging")
    assert router.ensure_route("svc", "staging") == first
    other = router.ensure_route("svc", "production")
    assert len({*first.ports, *other.ports}) == 6
    assert router.running() and router.not_running() == []


def test_preview_then_switch_without_dropping_a_request(router: HAProxyRouter) -> None:
    blue, blue_addr = _serve("blue")
    green, green_addr = _serve("green")
    route = router.ensure_route("svc", "staging")
    endpoint = f"http://127.0.0.1:{route.port}/"
    preview = f"http://127.0.0.1:{route.preview_port}/"

    router.set_preview("svc", "staging", Server(name="blue-r1", address=blue_addr))
    assert httpx.get(preview, timeout=5).text == "blue"
    router.switch("svc", "staging", "blue-r1")
    assert httpx.get(endpoint, timeout=5).text == "blue"

    router.set_preview("svc", "staging", Server(name="green-r2", address=green_addr))
    assert httpx.get(preview, timeout=5).text == "green"
    assert httpx.get(endpoint, timeout=5).text == "blue"  # the candidate gets no live traffic

    answers: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                try:
                    response = http.get(endpoint, timeout=5)
                    (answers if response.status_code == 200 else failures).append(response.text)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    def answered(more: int) -> None:
        # Waits on answers, not a fixed time: on a loaded machine 0.3 s may see none.
        target, deadline = len(answers) + more, time.monotonic() + 30
        while len(answers) < target and time.monotonic() < deadline:
            time.sleep(0.05)

    thread = threading.Thread(target=client)
    thread.start()
    answered(5)
    router.switch("svc", "staging", "green-r2")
    answered(5)
    router.switch("svc", "staging", "blue-r1")  # and back, as a rollback does
    answered(5)
    stop.set()
    thread.join()

    assert failures == []
    assert "green" in answers and answers[-1] == "blue"
    assert router.route("svc", "staging").live().name == "blue-r1"  # persisted
    router.remove_server("svc", "staging", "green-r2")
    assert [s.name for s in router.route("svc", "staging").servers] == ["blue-r1"]
    blue.shutdown()
    green.shutdown()


def test_live_server_cannot_be_removed(router: HAProxyRouter) -> None:
    _, address = _serve("x")
    router.ensure_route("svc", "staging")
    router.set_preview("svc", "staging", Server(name="blue-r1", address=address))
    router.switch("svc", "staging", "blue-r1")
    with pytest.raises(Exception, match="is live"):
        router.remove_server("svc", "staging", "blue-r1")


def test_adding_and_removing_routes_drops_no_request_on_another_route(
    router: HAProxyRouter,
) -> None:
    """Route changes start and stop other processes; route A's clients, kept-alive or
    connecting anew, must not see one failed request across them."""
    server, address = _serve("a")
    route = router.ensure_route("a", "staging")
    router.set_preview("a", "staging", Server(name="blue-r1", address=address))
    router.switch("a", "staging", "blue-r1")
    endpoint = f"http://127.0.0.1:{route.port}/"
    answered: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def drive(keep_alive: bool) -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                try:
                    response = (http.get(endpoint, timeout=5) if keep_alive
                                else httpx.get(endpoint, timeout=5))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                (answered if response.text == "a" else failures).append(
                    response.status_code if response.text == "a" else response.text)

    clients = [threading.Thread(target=drive, args=(keep,)) for keep in (True, True, False)]
    for thread in clients:
        thread.start()
    def answers_again() -> None:
        counted, deadline = len(answered), time.monotonic() + 10
        while len(answered) < counted + 10:
            assert time.monotonic() < deadline, f"route A stopped answering: {failures[-3:]}"
            time.sleep(0.02)

    try:
        answers_again()
        for index in range(6):
            router.ensure_route(f"other{index}", "staging")
            answers_again()
        for index in range(6):
            router.remove_route(f"other{index}", "staging")
            answers_again()
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    server.shutdown()
    assert failures == [], failures[:5]
    assert len(answered) > 50
    assert [r.key for r in router.routes()] == ["a.staging"]


def _servers_in(router: HAProxyRouter, backend: str) -> set[str]:
    route = router.route(*backend.split(".")[:2])
    lines = router.runtime(f"show servers state {backend}", route).splitlines()[2:]
    return {line.split()[3] for line in lines if line.strip() and not line.startswith("#")}


def test_promoting_a_loaded_preview_leaves_its_deletion_for_later(
    router: HAProxyRouter,
) -> None:
    """The load test leaves idle connections to the candidate, which HAProxy must purge
    before it deletes the server: the switch does not wait for that, a later call does."""
    _, blue_address = _serve("blue")
    _, green_address = _serve("green")
    route = router.ensure_route("svc", "staging")
    preview = f"http://127.0.0.1:{route.preview_port}/"
    router.set_preview("svc", "staging", Server(name="blue-r1", address=blue_address))
    router.switch("svc", "staging", "blue-r1")
    router.set_preview("svc", "staging", Server(name="green-r2", address=green_address))
    with httpx.Client() as http:  # the load test
        assert all(http.get(preview, timeout=5).text == "green" for _ in range(20))

    router.switch("svc", "staging", "green-r2")
    assert httpx.get(f"http://127.0.0.1:{route.port}/", timeout=5).text == "green"
    assert httpx.get(preview, timeout=5).status_code == 503  # no candidate any more
    state = router.route("svc", "staging")
    assert state is not None and state.preview is None

    deadline = time.monotonic() + 10
    while router.route("svc", "staging").retired_previews:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the promoted preview was never deleted"
        time.sleep(0.2)
        router.clear_preview("svc", "staging")
    assert _servers_in(router, route.preview_backend) == set()
    router.set_preview("svc", "staging", Server(name="green-r2", address=green_address))
    assert httpx.get(preview, timeout=5).text == "green"  # the same name can come back


def test_a_restart_forgets_retired_previews_and_later_calls_still_work(
    router: HAProxyRouter,
) -> None:
    """A promoted preview waits in ``retired_previews`` for its deletion; a route process
    started anew (after a reboot) is built without it, so naming it later must not fail."""
    _, blue_address = _serve("blue")
    _, green_address = _serve("green")
    route = router.ensure_route("svc", "staging")
    router.set_preview("svc", "staging", Server(name="blue-r1", address=blue_address))
    router.switch("svc", "staging", "blue-r1")
    state = router.route("svc", "staging")
    assert state is not None and state.retired_previews == ["blue-r1"]

    router.ensure_route("other", "staging")  # touches nothing of svc's process
    state = router.route("svc", "staging")
    assert state is not None and state.retired_previews == ["blue-r1"]
    router.stop()  # a reboot
    router.start()

    state = router.route("svc", "staging")
    assert state is not None and state.retired_previews == []
    assert _servers_in(router, route.preview_backend) == set()
    router.set_preview("svc", "staging", Server(name="green-r2", address=green_address))
    router.switch("svc", "staging", "green-r2")
    router.remove_server("svc", "staging", "blue-r1")
    assert httpx.get(f"http://127.0.0.1:{route.port}/", timeout=5).text == "green"


def _responses(route: Route) -> float:
    """Route's ``haproxy_server_http_responses_total`` for every server, read straight
    from its own exporter."""
    text = httpx.get(f"http://127.0.0.1:{route.metrics_port}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "haproxy_server_http_responses_total"
               and sample.labels.get("proxy") == route.backend)


def _live_route(router: HAProxyRouter, service: str, address: str) -> Route:
    router.ensure_route(service, "staging")
    router.set_preview(service, "staging", Server(name="blue-r1", address=address))
    router.switch(service, "staging", "blue-r1")
    route = router.route(service, "staging")
    assert route is not None
    return route


def test_a_route_added_or_removed_leaves_another_routes_process_and_counters_alone(
    router: HAProxyRouter,
) -> None:
    _, address = _serve("a")
    route = _live_route(router, "a", address)
    pid = router.route_pid("a", "staging")
    endpoint = f"http://127.0.0.1:{route.port}/"
    with httpx.Client() as http:
        for _ in range(10):
            assert http.get(endpoint, timeout=5).text == "a"
        before = _responses(route)
        assert before >= 10
        router.ensure_route("other", "staging")
        router.remove_route("other", "staging")
        for _ in range(5):
            assert http.get(endpoint, timeout=5).text == "a"
    assert router.route_pid("a", "staging") == pid
    assert _responses(route) == before + 5  # nothing lost, nothing counted twice


def test_removing_a_route_stops_its_process_and_frees_its_three_ports(
    router: HAProxyRouter,
) -> None:
    route = router.ensure_route("gone", "staging")
    pid = router.route_pid("gone", "staging")
    assert route.metrics_port is not None and len(set(route.ports)) == 3
    assert all(not _port_is_free("127.0.0.1", port) for port in route.ports)
    router.remove_route("gone", "staging")
    assert all(_port_is_free("127.0.0.1", port) for port in route.ports)
    assert router.route("gone", "staging") is None
    assert pid is not None and not router.socket_of("gone", "staging").exists()
    targets = json.loads(router.targets_path.read_text())
    assert [t for group in targets for t in group["targets"]] == ["127.0.0.1:28405"]
    assert router.ensure_route("next", "staging").ports == route.ports  # ports reused


def test_start_after_a_reboot_brings_every_route_back_with_its_servers(
    router: HAProxyRouter,
) -> None:
    _, blue = _serve("blue")
    _, green = _serve("green")
    one = _live_route(router, "one", blue)
    router.set_preview("one", "staging", Server(name="green-r2", address=green))
    two = _live_route(router, "two", green)
    router.isolate("two", "staging")
    router.stop()  # a reboot: every process gone
    assert not router.running() and router.not_running() == ["one.staging", "two.staging"]
    assert all(_port_is_free("127.0.0.1", port) for port in (*one.ports, *two.ports))

    router.start()

    assert router.running() and router.not_running() == []
    assert httpx.get(f"http://127.0.0.1:{one.port}/", timeout=5).text == "blue"
    assert httpx.get(f"http://127.0.0.1:{one.preview_port}/", timeout=5).text == "green"
    assert httpx.get(f"http://127.0.0.1:{two.port}/", timeout=5).status_code == 503
    router.switch("two", "staging", "blue-r1")  # the isolated route comes back by a switch
    assert httpx.get(f"http://127.0.0.1:{two.port}/", timeout=5).text == "green"
    targets = json.loads(router.targets_path.read_text())
    assert sorted(t for group in targets for t in group["targets"]) == sorted(
        f"127.0.0.1:{port}" for port in (28405, one.metrics_port, two.metrics_port))


def test_a_routes_file_from_before_metrics_ports_starts_with_one_allocated(
    router: HAProxyRouter,
) -> None:
    _, address = _serve("old")
    router.stop()
    old = {"routes": {"old.staging": {
        "service": "old", "environment": "staging", "port": 28010, "preview_port": 28011,
        "servers": [{"name": "blue-r1", "address": address, "enabled": True}],
        "preview": None}}}
    router.routes_path.write_text(json.dumps(old))

    router.start()

    route = router.route("old", "staging")
    assert route is not None and route.metrics_port is not None
    assert route.metrics_port not in (28010, 28011)
    assert httpx.get("http://127.0.0.1:28010/", timeout=5).text == "old"
    assert _responses(route) == 1


def test_start_takes_over_from_a_main_process_that_served_every_route_itself(
    router: HAProxyRouter,
) -> None:
    """The first start of this version on a stack whose one HAProxy still serves every
    route (the configuration before routes had their own process): each route's process
    takes its listening sockets over, a new main replaces the old one, and a client of the
    route sees no failed request."""
    _, address = _serve("old")
    router.stop()
    router.routes_path.write_text(json.dumps({"routes": {"old.staging": {
        "service": "old", "environment": "staging", "port": 28010, "preview_port": 28011,
        "servers": [{"name": "blue-r1", "address": address, "enabled": True}]}}}))
    old_config = router.render_main().replace(
        "level admin", "level admin expose-fd listeners") + "\n".join([
        "frontend old.staging", "    bind 127.0.0.1:28010", "    default_backend old.staging",
        "frontend old.staging.preview", "    bind 127.0.0.1:28011",
        "    default_backend old.staging.preview",
        "backend old.staging", f"    server blue-r1 {address}",
        "backend old.staging.preview", ""])
    router._launch(router.config_path, router.pid_path, router.socket_path, old_config)
    old_pid = router.pid()
    endpoint = "http://127.0.0.1:28010/"
    answered: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def drive(keep_alive: bool) -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                try:
                    response = (http.get(endpoint, timeout=5) if keep_alive
                                else httpx.get(endpoint, timeout=5))
                    (answered if response.text == "old" else failures).append(response.text)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    clients = [threading.Thread(target=drive, args=(keep,)) for keep in (True, False)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(0.5)
        router.start()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in clients:
            thread.join()

    assert failures == [], failures[:5]
    assert len(answered) > 10
    assert router.running() and router.pid() != old_pid
    assert router.route_pid("old", "staging") is not None and router.not_running() == []
    assert httpx.get(endpoint, timeout=5).text == "old"
    deadline = time.monotonic() + 10
    while _alive(old_pid):  # soft-stopped: gone once its connections are
        assert time.monotonic() < deadline, "the old main process never left"
        time.sleep(0.1)
