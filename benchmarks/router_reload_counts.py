"""What a route change does to another route's counters, as verification reads them.

A router of its own (temporary state directory, its own ports) serves route A at a fixed
request rate while a Prometheus of its own scrapes the router's exporters every 2 s, found
through the router's targets file as the stack's Prometheus finds them. Two phases of
``--seconds`` each: quiet, then with another route added and removed every ``--churn-s``
seconds. For each phase it prints the requests sent, what
``increase(haproxy_server_http_responses_total[...])`` counted over the phase, their ratio,
and how many of the 5 s measurement intervals (the verification's default) counted less
than half of what was sent in them: the ones where a router-sourced error rate can fall
under ``min_requests`` and read "no data", or be computed from a fraction of the traffic.

    .venv/bin/python benchmarks/router_reload_counts.py [--rps 20] [--seconds 60]

Measured here (docs/known-gaps.md): with one HAProxy process for every route, each route
change was a reload, a reloaded process starts its counters from zero, and the requests
served since Prometheus' last scrape of the old one were counted nowhere: churn 294 of 738
counted (0.40), 3 of 7 intervals short. With one process per route, a route change starts
or stops only that route's process: churn reads like quiet.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.router_bench import serve  # noqa: E402
from runbook.router import HAProxyRouter, Server  # noqa: E402
from runbook.settings import StackSettings  # noqa: E402
from runbook.stack.configs import router_job  # noqa: E402
from tests.private_prometheus import free_port, private_prometheus  # noqa: E402

ENV = "bench"
INTERVAL_S = 5
SCRAPE_S = 2


class Client(threading.Thread):
    """Requests at a fixed rate; remembers when each answered one was sent."""

    def __init__(self, url: str, rps: float) -> None:
        super().__init__(daemon=True)
        self.url, self.pause = url, 1 / rps
        self.stop = threading.Event()
        self.answered: list[float] = []
        self.failed = 0

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                started = time.time()
                try:
                    client.get(self.url).raise_for_status()
                    self.answered.append(started)
                except httpx.HTTPError:
                    self.failed += 1
                self.stop.wait(max(0.0, self.pause - (time.time() - started)))

    def sent_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.answered if start <= t < end)


def counted(prometheus: str, selector: str, range_s: float, at: float) -> float | None:
    query = f"sum(increase(haproxy_server_http_responses_total{{{selector}}}[{range_s:.0f}s]))"
    reply = httpx.get(f"{prometheus}/api/v1/query", params={"query": query, "time": at},
                      timeout=10)
    reply.raise_for_status()
    result = reply.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def churn(router: HAProxyRouter, stop: threading.Event, every_s: float) -> None:
    index = 0
    while not stop.is_set():
        router.ensure_route(f"churn{index % 3}", ENV)
        if stop.wait(every_s / 2):
            break
        router.remove_route(f"churn{index % 3}", ENV)
        index += 1
        stop.wait(every_s / 2)


def phase(router: HAProxyRouter, client: Client, seconds: float,
          churn_s: float | None) -> tuple[float, float]:
    stop = threading.Event()
    worker = threading.Thread(target=churn, args=(router, stop, churn_s), daemon=True)
    start = time.time()
    if churn_s is not None:
        worker.start()
    time.sleep(seconds)
    stop.set()
    if churn_s is not None:
        worker.join(timeout=30)
    return start, time.time()


def report(name: str, prometheus: str, selector: str, client: Client,
           span: tuple[float, float]) -> None:
    start, end = span
    sent = client.sent_between(start, end)
    total = counted(prometheus, selector, end - start, end) or 0.0
    short = windows = 0
    at = start + INTERVAL_S + SCRAPE_S
    while at <= end:
        windows += 1
        in_window = client.sent_between(at - INTERVAL_S, at)
        value = counted(prometheus, selector, INTERVAL_S, at)
        if value is None or value < in_window / 2:
            short += 1
        at += INTERVAL_S
    print(f"{name:<7} {sent:>6} {total:>9.0f} {total / max(sent, 1):>6.2f} {short:>3}/{windows}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--churn-s", type=float, default=3.0,
                        help="one route added and removed every this many seconds")
    args = parser.parse_args()
    backend, address = serve()
    with tempfile.TemporaryDirectory() as state:
        host = "127.0.0.1"
        base = free_port(host)
        settings = StackSettings(state_dir=Path(state), router_metrics_port=free_port(host),
                                 route_port_min=29700, route_port_max=29790)
        router = HAProxyRouter(settings)
        router.start()
        config = {"global": {"scrape_interval": f"{SCRAPE_S}s"},
                  "scrape_configs": [router_job(settings)]}
        try:
            route = router.ensure_route("a", ENV)
            router.set_preview("a", ENV, Server(name="blue-r1", address=address))
            router.switch("a", ENV, "blue-r1")
            prometheus_dir = Path(state) / "prometheus"
            prometheus_dir.mkdir()
            with private_prometheus(config, prometheus_dir, host, base) as url:
                client = Client(f"http://{host}:{route.port}/", args.rps)
                client.start()
                time.sleep(3 * SCRAPE_S)
                quiet = phase(router, client, args.seconds, None)
                churned = phase(router, client, args.seconds, args.churn_s)
                time.sleep(2 * SCRAPE_S)  # the last samples of the phase are scraped
                client.stop.set()
                client.join(timeout=10)
                selector = f'proxy="a.{ENV}",server="blue-r1"'
                print(f"{args.rps:g} requests/s, a route change every {args.churn_s:g} s in "
                      f"the second phase; {INTERVAL_S} s intervals")
                print("phase     sent   counted  ratio short intervals")
                report("quiet", url, selector, client, quiet)
                report("churn", url, selector, client, churned)
                print(f"failed requests: {client.failed}")
        finally:
            router.stop()
            backend.shutdown()


if __name__ == "__main__":
    main()
