"""The perf stage's load generator next to wrk, in one run against the same local endpoint.

Both tools get the same concurrency and duration, closed loop without think time, against one
HTTP server started here (a separate process, so neither load generator shares its CPU with
it). Printed: each tool's RPS and latency percentiles, and Locust's as a ratio of wrk's. On a
2-core machine the three processes compete: read the ratios, not the absolute numbers.

    .venv/bin/python benchmarks/perf_bench.py [--duration 5] [--users 4]
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from runbook.perf.locustfile import resolve_locustfile
from runbook.perf.runner import LocustJob, run_locust
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


def run_wrk(url: str, users: int, duration_s: int) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", "-t", "1", "-c", str(users), "-d", f"{duration_s}s", "--latency", url],
        capture_output=True, text=True, timeout=duration_s + 30, check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for percent, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output,
                                           re.MULTILINE):
        result[f"p{percent}"] = float(value) * UNIT_S[unit]
    return result


def run_perf_stage(url: str, users: int, duration_s: int, workdir: Path) -> dict[str, float]:
    locustfile = resolve_locustfile(workdir, None, ["/"], 10, workdir, think_time_s=0.0)
    report = run_locust(LocustJob(host=url, locustfile=locustfile, users=users,
                                  spawn_rate=users * 10, duration_s=duration_s,
                                  workdir=workdir))
    return {"rps": report.rps, "p50": report.p50_latency_s or 0.0,
            "p90": report.p90_latency_s or 0.0, "p99": report.p99_latency_s or 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--users", type=int, default=4)
    args = parser.parse_args()
    ensure_programs(["wrk"], StackSettings(), on_progress=print)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_server(port)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            locust = run_perf_stage(url, args.users, args.duration, Path(workdir))
        wrk = run_wrk(url, args.users, args.duration)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"endpoint {url}, {args.users} connections/users, {args.duration} s each, closed loop")
    print(f"{'metric':<8}{'perf stage (locust)':>22}{'wrk':>14}{'locust / wrk':>16}")
    for metric in ("rps", "p50", "p90", "p99"):
        scale, unit = (1.0, "") if metric == "rps" else (1000.0, " ms")
        ours, theirs = locust[metric], wrk.get(metric, 0.0)
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"{metric:<8}{ours * scale:>19.2f}{unit:<3}{theirs * scale:>11.2f}{unit:<3}"
              f"{ratio:>16}")


if __name__ == "__main__":
    main()
