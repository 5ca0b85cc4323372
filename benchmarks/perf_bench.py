"""The perf stage's load generator next to wrk, in one run against the same local endpoint.

Two phases against one HTTP server started here (a separate process, so neither load
generator shares its CPU with it), both tools with the same connections/users and duration:

1. throughput: closed loop without think time; the perf stage gets the workers
   ``policy.perf.workers: auto`` gives it (one per core). Row ``rps``, last column the
   perf stage / wrk ratio.
2. latency at a fixed request rate: each user/connection pauses ``--think-ms`` between
   requests (wrk through a Lua ``delay()``), so both offer the same rate and the server is
   not saturated; p50 / p90 / p99 of both, the perf stage's from its microsecond histogram.

On a 2-core machine the processes compete: read the ratios, not the absolute numbers.

    .venv/bin/python benchmarks/perf_bench.py [--duration 5] [--users 4] [--think-ms 10]
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import httpx

from runbook.perf.locustfile import resolve_locustfile
from runbook.perf.runner import LocustJob, resolve_workers, run_locust
from runbook.settings import StackSettings
from runbook.stack import ensure_programs

# TCP_NODELAY: headers and body leave in two writes; with Nagle and delayed ACKs every
# keep-alive response would wait ~40 ms and both tools would only measure that.
SERVER = """
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
# What FastHttpUser sends besides Host (seen on the wire, geventhttpclient 2.6.1).
LOCUST_HEADERS = {"User-Agent": f"python/gevent-http-client-{version('geventhttpclient')}",
                  "Accept-Encoding": "gzip, deflate, br"}
UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    # Its stderr is dropped: wrk resets its connections at the end, which the server reports.
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)],
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("benchmark server did not start")


def run_wrk(url: str, users: int, duration_s: int, think_ms: int, workdir: Path
            ) -> dict[str, float]:
    # The same request as the perf stage's: the server parses every header (Python's
    # http.server, cold after a pause, takes ~1 ms more for Locust's three than wrk's one).
    script = workdir / "wrk.lua"
    script.write_text(
        "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in LOCUST_HEADERS.items())
        + (f"function delay()\n  return {think_ms}\nend\n" if think_ms else "")
    )
    command = ["wrk", "-t", "1", "-c", str(users), "-d", f"{duration_s}s", "--latency",
               "-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=duration_s + 30, check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for percent, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output,
                                           re.MULTILINE):
        result[f"p{percent}"] = float(value) * UNIT_S[unit]
    return result


def run_perf_stage(url: str, users: int, duration_s: int, think_ms: int, workdir: Path
                   ) -> tuple[dict[str, float], int]:
    """The perf stage's own path: the generated locustfile, ``workers: auto``."""
    workdir.mkdir(parents=True, exist_ok=True)
    think_s = think_ms / 1000
    locustfile = resolve_locustfile(workdir, None, ["/"], 10, workdir, think_time_s=think_s)
    workers = resolve_workers("auto", users, think_s, None, own_locustfile=False)
    report = run_locust(LocustJob(host=url, locustfile=locustfile, users=users,
                                  spawn_rate=users * 10, duration_s=duration_s,
                                  workdir=workdir, workers=workers))
    return {"rps": report.rps, "p50": report.p50_latency_s or 0.0,
            "p90": report.p90_latency_s or 0.0, "p99": report.p99_latency_s or 0.0}, workers


def row(metric: str, ours: float, theirs: float) -> str:
    scale, unit = (1.0, "") if metric in ("rps", "rate") else (1000.0, " ms")
    ratio = f"{ours / theirs:.2f}" if theirs else "-"
    return (f"{metric:<8}{ours * scale:>19.2f}{unit:<3}{theirs * scale:>11.2f}{unit:<3}"
            f"{ratio:>16}")


def latency_agrees(ours: float, theirs: float) -> bool:
    """Within 10 % or 1 ms of wrk's, the issue's bar."""
    return abs(ours - theirs) <= max(0.10 * theirs, 0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--think-ms", type=int, default=10,
                        help="pause per user between requests in the fixed-rate phase")
    args = parser.parse_args()
    ensure_programs(["wrk"], StackSettings(), on_progress=print)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_server(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            locust, workers = run_perf_stage(url, args.users, args.duration, 0,
                                             workdir / "closed")
            wrk = run_wrk(url, args.users, args.duration, 0, workdir)
            locust_fixed, _ = run_perf_stage(url, args.users, args.duration, args.think_ms,
                                             workdir / "fixed")
            wrk_fixed = run_wrk(url, args.users, args.duration, args.think_ms, workdir)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"endpoint {url}, {args.users} connections/users, {args.duration} s per run")
    print(f"{'metric':<8}{'perf stage (locust)':>22}{'wrk':>14}{'locust / wrk':>16}")
    print(f"-- closed loop, perf stage with workers: auto ({workers} workers)")
    print(row("rps", locust["rps"], wrk["rps"]))
    print(f"-- fixed rate: {args.think_ms} ms pause per user between requests")
    print(row("rate", locust_fixed["rps"], wrk_fixed["rps"]))
    for metric in ("p50", "p90", "p99"):
        print(row(metric, locust_fixed[metric], wrk_fixed.get(metric, 0.0)))
    agree = all(latency_agrees(locust_fixed[m], wrk_fixed.get(m, 0.0))
                for m in ("p50", "p90", "p99"))
    print(f"percentiles within 10 % or 1 ms of wrk's: {'yes' if agree else 'no'}")


if __name__ == "__main__":
    main()
