"""The HAProxy router for real: its own state dir and ports, two local HTTP servers."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runbook.router import HAProxyRouter, Server
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
