"""Tests for agent-api, standard library only: they run inside the image
(`python3 -m unittest discover -s tests -v` in /app) as the pipeline's test stage."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
from fractions import Fraction
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(APP_DIR))  # `import app` whatever the working directory

import app  # noqa: E402


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    """Records requested delays instead of sleeping, so latency tests are instant."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class RunningServer:
    """An AgentServer on an ephemeral loopback port, served from a background thread."""

    def __init__(self, service: app.Service) -> None:
        self.service = service
        self.server = app.AgentServer(("127.0.0.1", 0), service)
        self.port = self.server.server_port
        # Short poll interval: shutdown() in close() then takes milliseconds, not 0.5 s.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def get(self, path: str, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[int, Any]:
        status, _, body = self.get(path)
        return status, json.loads(body)


def make_service(**config: Any) -> tuple[app.Service, FakeClock, RecordingSleep]:
    clock, sleep = FakeClock(), RecordingSleep()
    return app.Service(app.Config(**config), clock=clock, sleep=sleep), clock, sleep


def quiet_logs(test: unittest.TestCase) -> None:
    # One log line per request is right for the service, noise in test output.
    app.log.disabled = True
    test.addCleanup(setattr, app.log, "disabled", False)


class ConfigTest(unittest.TestCase):
    def test_defaults(self) -> None:
        self.assertEqual(app.Config.from_env({}), app.Config())
        self.assertEqual(app.Config().version, "1")

    def test_reads_every_knob(self) -> None:
        cfg = app.Config.from_env(
            {
                "ERROR_RATE": "0.3",
                "LATENCY_MS": "250",
                "HEALTH_FAIL": "1",
                "DEGRADE_AFTER_S": "20",
                "VERSION": "2-bad",
            }
        )
        self.assertEqual(
            cfg,
            app.Config(
                error_rate=Fraction(3, 10),
                latency_ms=250,
                health_fail=True,
                degrade_after_s=20.0,
                version="2-bad",
            ),
        )

    def test_empty_values_mean_defaults(self) -> None:
        # Docker passes an ARG declared without a value as an empty string.
        env = dict.fromkeys(
            ["ERROR_RATE", "LATENCY_MS", "HEALTH_FAIL", "DEGRADE_AFTER_S", "VERSION"], ""
        )
        self.assertEqual(app.Config.from_env(env), app.Config())

    def test_rejects_bad_values_naming_the_variable(self) -> None:
        for name, value in [
            ("ERROR_RATE", "1.5"),
            ("ERROR_RATE", "-0.1"),
            ("ERROR_RATE", "x"),
            ("LATENCY_MS", "-1"),
            ("LATENCY_MS", "1.5"),
            ("DEGRADE_AFTER_S", "nan"),
            ("HEALTH_FAIL", "maybe"),
        ]:
            with self.subTest(name=name, value=value), self.assertRaisesRegex(ValueError, name):
                app.Config.from_env({name: value})


class ErrorCounterTest(unittest.TestCase):
    def schedule(self, rate: str, n: int) -> list[bool]:
        counter = app.ErrorCounter(Fraction(rate))
        return [counter.next_fails() for _ in range(n)]

    def test_rate_is_exact_in_every_window(self) -> None:
        fails = self.schedule("0.3", 100)
        for start in range(0, 100, 10):
            self.assertEqual(sum(fails[start : start + 10]), 3)

    def test_schedule_is_deterministic(self) -> None:
        self.assertEqual(
            self.schedule("0.3", 10),
            [False, False, False, True, False, False, True, False, False, True],
        )

    def test_extremes_and_awkward_decimals(self) -> None:
        self.assertFalse(any(self.schedule("0", 50)))
        self.assertTrue(all(self.schedule("1", 50)))
        # 0.29 as a float times 100 is 28.999...; exact arithmetic must still give 29.
        self.assertEqual(sum(self.schedule("0.29", 100)), 29)
        self.assertEqual(sum(self.schedule("0.05", 20)), 1)

    def test_thread_safe(self) -> None:
        counter = app.ErrorCounter(Fraction(1, 4))
        results: list[bool] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(250):
                fails = counter.next_fails()
                with lock:
                    results.append(fails)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sum(results), 500)


class DegradeTest(unittest.TestCase):
    def test_without_delay_faults_apply_from_the_start(self) -> None:
        service, _, _ = make_service(error_rate=Fraction(1))
        self.assertTrue(service.degraded())

    def test_faults_start_after_the_delay(self) -> None:
        service, clock, _ = make_service(error_rate=Fraction(1), degrade_after_s=20)
        self.assertFalse(service.degraded())
        clock.now += 19.9
        self.assertFalse(service.degraded())
        clock.now += 0.1
        self.assertTrue(service.degraded())


class AnswerTest(unittest.TestCase):
    def test_keyword_lookup_is_deterministic(self) -> None:
        first = app.answer("What is the STATUS?", "7")
        self.assertEqual(first, app.answer("What is the STATUS?", "7"))
        self.assertEqual(first["answer"], "All systems are operational.")
        self.assertEqual(first["confidence"], 0.95)
        self.assertIn("version 7", app.answer("which version?", "7")["answer"])

    def test_unknown_question_gets_low_confidence_fallback(self) -> None:
        self.assertLess(app.answer("meaning of life", "1")["confidence"], 0.5)


class HttpTest(unittest.TestCase):
    def start(self, **config: Any) -> tuple[RunningServer, FakeClock, RecordingSleep]:
        quiet_logs(self)
        service, clock, sleep = make_service(**config)
        running = RunningServer(service)
        self.addCleanup(running.close)
        return running, clock, sleep

    def test_health(self) -> None:
        srv, _, _ = self.start(version="3")
        self.assertEqual(srv.get_json("/health"), (200, {"status": "ok", "version": "3"}))

    def test_root(self) -> None:
        srv, _, _ = self.start(version="3")
        status, body = srv.get_json("/")
        self.assertEqual(status, 200)
        self.assertEqual((body["service"], body["version"]), ("agent-api", "3"))

    def test_answer(self) -> None:
        srv, _, _ = self.start()
        status, body = srv.get_json("/api/answer?q=status")
        self.assertEqual(status, 200)
        self.assertEqual(body["answer"], "All systems are operational.")
        self.assertEqual(body["question"], "status")
        # Without a question it still answers: traffic may request the bare path.
        self.assertEqual(srv.get_json("/api/answer")[0], 200)

    def test_api_tokens_require_a_listed_bearer_token_on_answer_only(self) -> None:
        config = app.Config.from_env({"API_TOKENS": "new-token, old-token"})
        srv, _, _ = self.start(api_tokens=config.api_tokens)
        self.assertEqual(srv.get("/api/answer?q=status")[0], 401)
        for token in ("new-token", "old-token"):
            headers = {"Authorization": f"Bearer {token}"}
            self.assertEqual(srv.get("/api/answer?q=status", headers)[0], 200)
        self.assertEqual(srv.get("/api/answer", {"Authorization": "Bearer other"})[0], 401)
        self.assertEqual(srv.get("/api/answer", {"Authorization": "Basic new-token"})[0], 401)
        self.assertEqual(srv.get("/health")[0], 200)
        self.assertEqual(srv.get("/")[0], 200)

    def test_unknown_path_is_404(self) -> None:
        srv, _, _ = self.start()
        self.assertEqual(srv.get("/nope")[0], 404)
        self.assertEqual(srv.get("/health/x")[0], 404)

    def metrics_after(self, srv: Any, *expected: str) -> tuple[int, dict[str, str], str]:
        """/metrics once it shows every ``expected`` line: a handler counts its request
        after the response is sent, on its own thread, so a client can ask for /metrics
        before the counts are in, and a later request's count can land before an earlier
        one's (seen under load: the 404 counted, the second "/" not yet)."""
        deadline = time.monotonic() + 5
        while True:
            status, headers, body = srv.get("/metrics")
            text = body.decode()
            if all(line in text for line in expected) or time.monotonic() > deadline:
                return status, headers, text
            time.sleep(0.01)

    def test_metrics(self) -> None:
        srv, _, _ = self.start(version="3")
        srv.get("/")
        srv.get("/")
        srv.get("/nope")
        status, headers, text = self.metrics_after(
            srv, 'code="404"} 1\n', 'http_requests_total{path="/",code="200"} 2\n',
            'http_request_duration_seconds_count{path="/"} 2\n')
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.assertIn('http_requests_total{path="/",code="200"} 2\n', text)
        self.assertIn('http_requests_total{path="other",code="404"} 1\n', text)
        self.assertIn('http_request_duration_seconds_count{path="/"} 2\n', text)
        self.assertIn('http_request_duration_seconds_sum{path="/"} ', text)
        self.assertIn("process_start_time_seconds ", text)
        self.assertIn('agent_api_info{version="3"} 1\n', text)
        self.assertIn("agent_api_queue_depth 0\n", text)

    def test_queue_depth_knob_shows_only_in_the_metrics(self) -> None:
        srv, _, _ = self.start(queue_depth=80)
        self.assertEqual(srv.get("/")[0], 200)
        self.assertIn("agent_api_queue_depth 80\n", srv.get("/metrics")[2].decode())
        config = app.Config.from_env({"QUEUE_DEPTH": "80"})
        self.assertEqual(config.queue_depth, 80)
        with self.assertRaises(ValueError):
            app.Config.from_env({"QUEUE_DEPTH": "-1"})

    def test_keep_alive_reuses_the_connection(self) -> None:
        srv, _, _ = self.start()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        self.addCleanup(conn.close)
        for path in ["/", "/health", "/api/answer?q=hello", "/nope"]:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            self.assertEqual(resp.version, 11)
            self.assertEqual(int(resp.headers["Content-Length"]), len(body))
            self.assertFalse(resp.will_close)
        self.assertIsNotNone(conn.sock)  # one socket served all four requests

    def test_error_rate_hits_traffic_exactly_and_spares_health(self) -> None:
        srv, _, _ = self.start(error_rate=Fraction(3, 10))
        codes = [srv.get("/" if i % 2 else "/api/answer?q=status")[0] for i in range(20)]
        self.assertEqual(codes.count(500), 6)
        self.assertEqual(codes.count(200), 14)
        self.assertTrue(all(srv.get("/health")[0] == 200 for _ in range(10)))
        self.assertEqual(srv.get("/metrics")[0], 200)

    def test_latency_applies_to_traffic_not_health(self) -> None:
        srv, _, sleep = self.start(latency_ms=1500)
        srv.get("/health")
        srv.get("/metrics")
        self.assertEqual(sleep.calls, [])
        srv.get("/")
        srv.get("/api/answer?q=x")
        self.assertEqual(sleep.calls, [1.5, 1.5])

    def test_health_fail(self) -> None:
        srv, _, _ = self.start(health_fail=True, version="9")
        self.assertEqual(srv.get_json("/health"), (503, {"status": "failing", "version": "9"}))
        self.assertEqual(srv.get("/")[0], 200)  # only health fails

    def test_degrade_after_keeps_health_ok_and_breaks_traffic_later(self) -> None:
        srv, clock, sleep = self.start(error_rate=Fraction(1), latency_ms=200, degrade_after_s=20)
        self.assertEqual([srv.get("/")[0] for _ in range(5)], [200] * 5)
        self.assertEqual(sleep.calls, [])
        clock.now += 20
        self.assertEqual([srv.get("/")[0] for _ in range(5)], [500] * 5)
        self.assertEqual(sleep.calls, [0.2] * 5)
        self.assertEqual(srv.get("/health")[0], 200)

    def test_draining_closes_keep_alive_connections(self) -> None:
        srv, _, _ = self.start()
        srv.service.draining = True
        status, headers, _ = srv.get("/health")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Connection"), "close")

    def test_in_flight_count_returns_to_idle(self) -> None:
        srv, _, _ = self.start()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.request("GET", "/")
        conn.getresponse().read()
        # An idle keep-alive connection does not hold up a graceful stop...
        self.assertTrue(srv.service.wait_idle(2))
        conn.close()
        self.assertTrue(srv.service.wait_idle(2))


# The image bakes the knobs into its environment, and the test stage runs inside the image:
# drop them so a deliberately bad release still passes its unit tests (it is meant to be
# caught by load tests and verification, not here).
BASE_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in {"ERROR_RATE", "LATENCY_MS", "HEALTH_FAIL", "DEGRADE_AFTER_S", "VERSION"}
}


class ProcessTest(unittest.TestCase):
    """The real entry point: knobs from the environment, SIGTERM handling, exit codes."""

    def run_app(self, **env: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(APP_DIR / "app.py")],
            env={**BASE_ENV, "HOST": "127.0.0.1", "PORT": "0", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(self._reap, proc)
        return proc

    @staticmethod
    def _reap(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)

    def wait_for_port(self, proc: subprocess.Popen[str]) -> int:
        if proc.stdout is None:
            self.fail("stdout not captured")
        line = proc.stdout.readline()  # the startup line: "... listening on HOST:PORT ..."
        return int(line.split(" listening on ", 1)[1].split()[0].rsplit(":", 1)[1])

    def test_sigterm_finishes_in_flight_requests_and_exits_0(self) -> None:
        proc = self.run_app(LATENCY_MS="3000", VERSION="slow")
        port = self.wait_for_port(proc)
        result: dict[str, Any] = {}
        sent = threading.Event()

        def slow_request() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            conn.request("GET", "/api/answer?q=status")
            sent.set()
            resp = conn.getresponse()
            result["status"], result["body"] = resp.status, json.loads(resp.read())
            conn.close()

        client = threading.Thread(target=slow_request)
        client.start()
        # Timing-free up to here: the request has left the client. The pause lets the
        # accept loop (0.1 s poll) take it even on a loaded machine; it then waits 3 s.
        self.assertTrue(sent.wait(timeout=10))
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.4)  # > the 0.1 s accept-loop poll interval
        self.assertTrue(client.is_alive(), "the slow request should still be in flight")
        with self.assertRaises(ConnectionRefusedError):  # stopped accepting while draining
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        client.join(timeout=15)
        self.assertEqual(proc.wait(timeout=10), 0)
        self.assertEqual(result.get("status"), 200)
        self.assertEqual(result["body"]["version"], "slow")
        out, _ = proc.communicate(timeout=5)
        self.assertIn('"GET /api/answer?q=status" 200', out)

    def test_bad_knob_exits_2_with_one_clear_line(self) -> None:
        proc = self.run_app(ERROR_RATE="30%")
        _, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(
            err.strip().splitlines(),
            ["agent-api: ERROR_RATE must be a number " "in 0..1, got '30%'"],
        )


if __name__ == "__main__":
    unittest.main()
