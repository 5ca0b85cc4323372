"""The router at scale: a traffic switch, and adding / removing a route, with many routes.

A router of its own (temporary state directory, its own port range) gets ``--routes``
routes, each with a live server and its own HAProxy process; then one route is switched
back and forth between two revisions, and routes are added and removed (a process started,
one stopped), while a client drives requests at route A the whole time. Printed: the time of
a switch (p50 / p95 / max), of a route added and removed, the memory of the router's
processes (RSS summed from /proc) and the requests route A failed (must be 0).

    .venv/bin/python benchmarks/router_bench.py [--routes 200] [--switches 40]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from runbook.router import HAProxyRouter, Server
from runbook.settings import StackSettings

ENV = "bench"


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A reload closes HAProxy's idle connections to the servers: expected, not news."""


def serve() -> tuple[ThreadingHTTPServer, str]:
    server = _QuietServer(("127.0.0.1", 0), _Ok)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


class Client(threading.Thread):
    """Requests route A back to back on one kept-alive connection; counts failures."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.ok = 0
        self.failed: list[str] = []

    def run(self) -> None:
        with httpx.Client() as http:
            while not self.stop.is_set():
                try:
                    response = http.get(self.url, timeout=5)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                    continue
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append(str(response.status_code))


def router_memory_mb(router: HAProxyRouter) -> tuple[float, float]:
    """RSS and PSS (shared pages split between the processes sharing them) of the main
    process and every route's, summed from /proc."""
    pids = [router.pid(), *(router.route_pid(r.service, r.environment) for r in router.routes())]
    totals = {"Rss:": 0, "Pss:": 0}
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            field, value, *_ = line.split()
            if field in totals:
                totals[field] += int(value)
    return totals["Rss:"] / 1024, totals["Pss:"] / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=200)
    parser.add_argument("--switches", type=int, default=40)
    parser.add_argument("--changes", type=int, default=5, help="routes added, then removed")
    args = parser.parse_args()
    blue, blue_address = serve()
    green, green_address = serve()
    with tempfile.TemporaryDirectory() as state:
        settings = StackSettings(state_dir=Path(state), router_metrics_port=29405,
                                 route_port_min=29500,
                                 route_port_max=29500 + 3 * (args.routes + args.changes) + 50)
        router = HAProxyRouter(settings)
        router.start()
        try:
            started = time.monotonic()
            for index in range(args.routes):
                name = f"svc{index:03d}"
                router.ensure_route(name, ENV)
                router.set_preview(name, ENV, Server(name="blue-r1", address=blue_address))
                router.switch(name, ENV, "blue-r1")
            setup_s = time.monotonic() - started
            client = Client(f"http://127.0.0.1:{router.route('svc000', ENV).port}/")  # type: ignore[union-attr]
            client.start()
            router.set_preview("svc001", ENV, Server(name="green-r2", address=green_address))
            switches = [timed_ms(lambda to=to: router.switch("svc001", ENV, to))
                        for to in ["green-r2", "blue-r1"] * (args.switches // 2)]
            added = [timed_ms(lambda i=i: router.ensure_route(f"new{i}", ENV))
                     for i in range(args.changes)]
            removed = [timed_ms(lambda i=i: router.remove_route(f"new{i}", ENV))
                       for i in range(args.changes)]
            rss_mb, pss_mb = router_memory_mb(router)
            time.sleep(0.5)
            client.stop.set()
            client.join(timeout=10)
        finally:
            router.stop()
    blue.shutdown()
    green.shutdown()
    print(f"{args.routes} routes set up in {setup_s:.1f} s "
          f"({setup_s / args.routes * 1000:.0f} ms per route: add, preview, switch)")
    print(f"switch at {args.routes} routes: p50 {statistics.median(switches):.1f} ms, "
          f"p95 {p95(switches):.1f} ms, max {max(switches):.1f} ms (target < 50 ms)")
    print(f"add a route at {args.routes} routes (its process started): "
          f"p50 {statistics.median(added):.0f} ms; remove (soft stop): "
          f"p50 {statistics.median(removed):.0f} ms")
    print(f"router memory over {args.routes + 1} HAProxy processes: {rss_mb:.0f} MB RSS, "
          f"{pss_mb:.0f} MB PSS ({pss_mb / (args.routes + 1):.1f} MB each)")
    print(f"route A during switches and route changes: {client.ok} requests answered, "
          f"{len(client.failed)} failed {client.failed[:3]}")
    print(f"failed requests: {len(client.failed)}")


if __name__ == "__main__":
    main()
