"""agent-api: a tiny stand-in for an "AI agent" HTTP service.

It is the sample service the runbook pipeline delivers in demos and end-to-end tests, so it
is standard library only (the base image has nothing but python3) and it can be built as a
deliberately *bad release* through environment knobs (see README.md):

    ERROR_RATE       fraction (0..1) of traffic requests answered with 500, deterministic
    LATENCY_MS       delay added to traffic requests
    HEALTH_FAIL      1 -> /health answers 503
    DEGRADE_AFTER_S  > 0 -> ERROR_RATE, LATENCY_MS and QUEUE_DEPTH start only after that
                     many seconds
    QUEUE_DEPTH      value of the agent_api_queue_depth gauge on /metrics: a fault only the
                     application's own metrics show (the router sees nothing wrong)
    VERSION          label shown in responses
    API_TOKENS       comma-separated bearer tokens; when set, /api/answer requires one
                     (a list, so a rotated token and its predecessor work together)

"Traffic" means `/` and `/api/answer`: the paths the pipeline's perf stage and verification
request. /health and /metrics are never degraded by ERROR_RATE or LATENCY_MS, so a bad
release has to be caught by measuring real traffic, not by a health-check timeout.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

SERVICE_NAME = "agent-api"
TRAFFIC_PATHS = frozenset({"/", "/api/answer"})
KNOWN_PATHS = TRAFFIC_PATHS | {"/health", "/metrics"}
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Longer than common proxy idle timeouts (nginx upstream keepalive 60 s), so the router,
# not this server, closes idle keep-alive connections: a server-side close racing a reused
# connection shows up as spurious 502s at the router.
KEEPALIVE_IDLE_TIMEOUT_S = 75.0
# Docker's default stop grace period is 10 s; drain within it so we exit 0, not SIGKILL.
DRAIN_TIMEOUT_S = 9.0

log = logging.getLogger(SERVICE_NAME)
_Num = TypeVar("_Num", int, float)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    error_rate: Fraction = Fraction(0)
    latency_ms: int = 0
    health_fail: bool = False
    degrade_after_s: float = 0.0
    queue_depth: int = 0
    version: str = "1"
    api_tokens: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Read the knobs; raise ValueError naming the bad variable so startup fails loudly
        (a typo in a bad-release build arg must not silently yield a good release)."""

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        raw_rate = get("ERROR_RATE", "0")
        try:
            # Fraction of the decimal string keeps the rate exact: 0.29 means 29 in 100.
            rate = Fraction(raw_rate)
        except ValueError:
            rate = Fraction(-1)
        if not 0 <= rate <= 1:
            raise ValueError(f"ERROR_RATE must be a number in 0..1, got {raw_rate!r}")
        latency = _parse_number(get("LATENCY_MS", "0"), "LATENCY_MS", int)
        degrade = _parse_number(get("DEGRADE_AFTER_S", "0"), "DEGRADE_AFTER_S", float)
        queue_depth = _parse_number(get("QUEUE_DEPTH", "0"), "QUEUE_DEPTH", int)
        health_fail = get("HEALTH_FAIL", "0").lower()
        if health_fail not in {"0", "1", "true", "false", "yes", "no"}:
            raise ValueError(f"HEALTH_FAIL must be 0 or 1, got {health_fail!r}")
        return cls(
            error_rate=rate,
            latency_ms=latency,
            health_fail=health_fail in {"1", "true", "yes"},
            degrade_after_s=degrade,
            queue_depth=queue_depth,
            version=get("VERSION", "1"),
            api_tokens=frozenset(
                t.strip() for t in env.get("API_TOKENS", "").split(",") if t.strip()
            ),
        )


def _parse_number(raw: str, name: str, kind: Callable[[str], _Num]) -> _Num:
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a non-negative {kind.__name__}, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative {kind.__name__}, got {raw!r}")
    return value


# --------------------------------------------------------------------------- fault injection


class ErrorCounter:
    """Deterministic failure schedule: request n (1-based) fails when
    floor(n * rate) > floor((n - 1) * rate). A rate of 0.3 fails exactly 3 of every 10
    requests, so tests and demos see the same error rate every run."""

    def __init__(self, rate: Fraction) -> None:
        self._rate = rate
        self._n = 0
        self._lock = threading.Lock()

    def next_fails(self) -> bool:
        with self._lock:
            self._n += 1
            n = self._n
        return math.floor(n * self._rate) > math.floor((n - 1) * self._rate)


# --------------------------------------------------------------------------- answers

# (keyword, answer, confidence): first keyword found in the question wins, so it is stable.
_ANSWERS: tuple[tuple[str, str, float], ...] = (
    ("status", "All systems are operational.", 0.95),
    ("health", "Health checks are passing.", 0.9),
    ("deploy", "Deployments go to a preview slot first, then traffic switches.", 0.85),
    ("rollback", "A failed verification switches traffic back to the previous release.", 0.85),
    ("version", "You are talking to version {version}.", 0.99),
    ("hello", "Hello! Ask me about status, deploys or rollbacks.", 0.8),
)
_FALLBACK = ("I don't know yet; try asking about status, deploys or rollbacks.", 0.2)


def answer(question: str, version: str) -> dict[str, Any]:
    words = question.lower()
    for keyword, text, confidence in _ANSWERS:
        if keyword in words:
            return {
                "question": question,
                "answer": text.format(version=version),
                "confidence": confidence,
                "version": version,
            }
    text, confidence = _FALLBACK
    return {"question": question, "answer": text, "confidence": confidence, "version": version}


# --------------------------------------------------------------------------- metrics


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self, version: str) -> None:
        self._version = version
        self._start_time = time.time()
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._duration: dict[str, tuple[float, int]] = {}

    def observe(self, path: str, code: int, seconds: float) -> None:
        with self._lock:
            self._requests[path, code] = self._requests.get((path, code), 0) + 1
            total, count = self._duration.get(path, (0.0, 0))
            self._duration[path] = (total + seconds, count + 1)

    def render(self, queue_depth: int = 0) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            durations = sorted(self._duration.items())
        lines = [
            "# HELP http_requests_total HTTP requests handled, by path and status code.",
            "# TYPE http_requests_total counter",
            *(
                f'http_requests_total{{path="{_label(p)}",code="{c}"}} {n}'
                for (p, c), n in requests
            ),
            "# HELP http_request_duration_seconds Time spent handling HTTP requests.",
            "# TYPE http_request_duration_seconds summary",
        ]
        for path, (total, count) in durations:
            lines.append(f'http_request_duration_seconds_sum{{path="{_label(path)}"}} {total!r}')
            lines.append(f'http_request_duration_seconds_count{{path="{_label(path)}"}} {count}')
        lines += [
            "# HELP process_start_time_seconds Start time of the process since unix epoch.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self._start_time!r}",
            "# HELP agent_api_info Build information.",
            "# TYPE agent_api_info gauge",
            f'agent_api_info{{version="{_label(self._version)}"}} 1',
            "# HELP agent_api_queue_depth Questions waiting for an answer.",
            "# TYPE agent_api_queue_depth gauge",
            f"agent_api_queue_depth {queue_depth}",
        ]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- service state


class Service:
    """Everything the handlers share. `clock` (monotonic seconds) and `sleep` are injectable
    so tests can check the degrade-after and latency logic without waiting."""

    def __init__(
        self,
        config: Config,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.started_at = clock()
        self.errors = ErrorCounter(config.error_rate)
        self.metrics = Metrics(config.version)
        self.draining = False
        # Connections accepted but not yet answered, plus keep-alive requests in progress:
        # what a graceful stop has to wait for.
        self._busy = 0
        self._idle = threading.Condition()

    def degraded(self) -> bool:
        """Whether ERROR_RATE and LATENCY_MS apply now. With DEGRADE_AFTER_S the release
        looks healthy at first and goes bad later, as real regressions often do."""
        after = self.config.degrade_after_s
        return after <= 0 or self.clock() - self.started_at >= after

    def acquire(self) -> None:
        with self._idle:
            self._busy += 1

    def release(self) -> None:
        with self._idle:
            self._busy -= 1
            if self._busy <= 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy <= 0, timeout)


# --------------------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = SERVICE_NAME
    timeout = KEEPALIVE_IDLE_TIMEOUT_S
    server: AgentServer

    def setup(self) -> None:
        # AgentServer.process_request counted this connection as busy at accept time, so a
        # stop that lands between accept and the first request still waits for it.
        self._busy = True
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            (self.server.service.acquire if busy else self.server.service.release)()

    def do_GET(self) -> None:
        self._set_busy(True)
        started = time.perf_counter()
        service = self.server.service
        url = urlsplit(self.path)
        # Unknown paths share one label so scanners probing random URLs cannot blow up the
        # metric cardinality.
        path_label = url.path if url.path in KNOWN_PATHS else "other"
        code = 500
        try:
            if self.headers.get("Content-Length", "0") not in ("", "0"):
                # We never read request bodies; closing keeps the connection from desyncing.
                self.close_connection = True
            code, body, ctype = self._route(
                service, url.path, url.query, self.headers.get("Authorization", "")
            )
            self._send(code, body, ctype)
        finally:
            elapsed = time.perf_counter() - started
            service.metrics.observe(path_label, code, elapsed)
            log.info(
                '%s "%s %s" %d %.1fms',
                self.client_address[0],
                self.command,
                self.path,
                code,
                elapsed * 1000,
            )
            self._set_busy(False)

    def _route(
        self, service: Service, path: str, query: str, authorization: str = ""
    ) -> tuple[int, bytes, str]:
        cfg = service.config
        if path == "/api/answer" and not authorized(cfg.api_tokens, authorization):
            return _json(401, {"error": "missing or unknown bearer token"})
        if path == "/health":
            if cfg.health_fail:
                return _json(503, {"status": "failing", "version": cfg.version})
            return _json(200, {"status": "ok", "version": cfg.version})
        if path == "/metrics":
            depth = cfg.queue_depth if service.degraded() else 0
            return 200, service.metrics.render(depth).encode(), PROMETHEUS_CONTENT_TYPE
        if path not in TRAFFIC_PATHS:
            return _json(404, {"error": "not found", "path": path})

        if service.degraded():
            if cfg.latency_ms:
                service.sleep(cfg.latency_ms / 1000)
            if service.errors.next_fails():
                return _json(500, {"error": "injected failure", "version": cfg.version})
        if path == "/":
            return _json(
                200,
                {
                    "service": SERVICE_NAME,
                    "version": cfg.version,
                    "endpoints": ["/", "/api/answer?q=...", "/health", "/metrics"],
                },
            )
        question = parse_qs(query).get("q", [""])[0]
        return _json(200, answer(question, cfg.version))

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.server.service.draining:
            # Tell keep-alive clients to reconnect (to whatever replaces us) after this one.
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # do_GET logs one line per request, with its duration, to stdout

    def log_message(self, format: str, *args: Any) -> None:
        # Reached only through log_error: malformed requests that never get to do_GET.
        log.warning("%s %s", self.client_address[0], format % args)


def authorized(tokens: frozenset[str], authorization: str) -> bool:
    """No tokens configured: open. Otherwise the bearer token must be one of them (compared
    in constant time, so response timing does not leak a token's prefix)."""
    if not tokens:
        return True
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return any(hmac.compare_digest(presented.encode(), t.encode()) for t in tokens)


def _json(code: int, payload: dict[str, Any]) -> tuple[int, bytes, str]:
    return code, json.dumps(payload).encode(), "application/json"


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not keep the process alive
    block_on_close = False  # we drain in-flight requests ourselves, not idle connections
    request_queue_size = 128  # absorb bursts from the load test instead of refusing them

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Counted here, in the accept loop, so every accepted connection is known before
        # serve_forever() returns on shutdown.
        self.service.acquire()
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client resets are routine under load tests; one line, not a traceback.
        log.warning("%s connection error: %s", client_address[0], sys.exc_info()[1])


def serve(server: AgentServer) -> bool:
    """Serve until SIGTERM/SIGINT, then stop accepting and let in-flight requests finish.
    Returns whether everything in flight finished within DRAIN_TIMEOUT_S."""

    def stop(signum: int, _frame: Any) -> None:
        log.info("received %s: draining", signal.Signals(signum).name)
        server.service.draining = True
        # shutdown() waits for serve_forever() to return, which runs in this (main) thread:
        # call it from another thread or it deadlocks.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A short poll interval makes the listening socket close soon after the signal.
    server.serve_forever(poll_interval=0.1)
    server.server_close()  # stop accepting: new connections are refused from here on
    drained = server.service.wait_idle(DRAIN_TIMEOUT_S)
    log.info("stopped (%s)", "drained" if drained else "drain timed out")
    return drained


def main() -> int:
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        config = Config.from_env(os.environ)
        port = _parse_number(os.environ.get("PORT", "").strip() or "8080", "PORT", int)
    except ValueError as exc:
        print(f"{SERVICE_NAME}: {exc}", file=sys.stderr)
        return 2
    # Listening on all interfaces is the point inside a container.
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104  # nosec B104
    server = AgentServer((host, port), Service(config))
    log.info(
        "%s version %s listening on %s:%d (error_rate=%s latency_ms=%d health_fail=%s "
        "degrade_after_s=%s queue_depth=%d)",
        SERVICE_NAME,
        config.version,
        host,
        server.server_port,
        float(config.error_rate),
        config.latency_ms,
        config.health_fail,
        config.degrade_after_s,
        config.queue_depth,
    )
    serve(server)  # a drain timeout is logged; the stop itself was still asked for: exit 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
