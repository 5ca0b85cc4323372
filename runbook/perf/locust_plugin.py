"""Loaded by Locust next to the locustfile (``-f locustfile.py,runbook_plugin.py``); never
imported by runbook itself (importing Locust monkey-patches the importing process).

The runner copies this file into the run directory, so a run there reproduces without
runbook installed. It does three things Locust does not:

- brings gevent's clock up to date before the test starts. The event loop caches its
  time, and until the loop first runs that is the hub's creation at Locust's import;
  ``--run-time`` is a ``spawn_later`` from that stale time, so a start that took seconds
  (imports on a busy machine) cut the load test short by as much: a 4 s test made no
  request at all at load average 20;

- flushes the live ``_stats_history.csv`` every second (Locust's default, 5 s, is too coarse
  for the progress bar of a short test);
- keeps every response time at microsecond resolution (three significant digits), per
  endpoint, because Locust's own histogram rounds to whole milliseconds, which is all there
  is to tell apart on a fast service. Workers send theirs with each stats report, the master
  (or the standalone process) merges them and writes them to ``RUNBOOK_LATENCY_FILE``;
- times FastHttpUser's requests at the connection, as wrk and k6 (``http_req_duration``)
  do: from the moment the request goes to its socket to the arrival of the response's last
  byte (the kernel's receive time of that read, ``SO_TIMESTAMPNS``; over TLS, or where the
  kernel gives none, the moment the parser had read it). Locust's own time also covers
  geventhttpclient's request and response objects, the cookie jar and Locust's session,
  ~1 ms of Python per request here, plus, with several users in one process, the other
  users' turns before this one reads its response: on a fast service that is most of what
  it reports and none of the service's doing. A request the connection did not time
  (HttpUser's ``requests``, a custom client, a timeout before any response) keeps Locust's
  time. Locust's own statistics (its CSV files, its web UI) keep Locust's time throughout;
- yields the CPU (``sched_yield``) right after each plain request is sent, so a service on
  the same machine answers without waiting for the generator's own Python on its core
  (the kernel wakes it there): what the perf stage measures is then the service's time, as
  the wire shows it, not the generator's.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import socket
import struct
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import gevent
import locust.stats
from geventhttpclient.connectionpool import ConnectionPool
from geventhttpclient.response import HTTPSocketResponse
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1

REPORT_KEY = "runbook_latency_us"
OUTPUT = os.environ.get("RUNBOOK_LATENCY_FILE")
SIGNIFICANT_DIGITS = 3

# endpoint ("METHOD name") -> {microseconds (3 significant digits): count}
_histograms: dict[str, Counter[int]] = {}
# endpoint -> how many of its requests were timed at the connection (the rest: Locust's time)
_at_connection: Counter[str] = Counter()


def bucket_us(response_time_ms: float) -> int:
    """Microseconds rounded to three significant digits (error below 0.5 %)."""
    micros = max(0, round(response_time_ms * 1000))
    digits = len(str(micros))
    if digits <= SIGNIFICANT_DIGITS:
        return micros
    scale = 10 ** (digits - SIGNIFICANT_DIGITS)
    return round(micros / scale) * scale


class _WireTimes:
    """One request's times at the connection, in the greenlet (Locust user) that made it."""

    __slots__ = ("arrived", "complete", "sent", "sent_wall")

    def __init__(self) -> None:
        self.sent_wall = time.time()
        self.sent = time.perf_counter()
        self.arrived: float | None = None  # the kernel's time of the last data read
        self.complete: float | None = None


_wire: weakref.WeakKeyDictionary[Any, _WireTimes] = weakref.WeakKeyDictionary()

# The kernel's receive time of the data each read returns (SO_TIMESTAMPNS, CLOCK_REALTIME,
# a struct timespec). With it the end of a request is when its last byte reached the
# machine, not when this user's greenlet got its turn to read it: with several users in
# one process, another user's Python (~1 ms a request) often runs first. The option's
# number is asm-generic's: Python's socket module does not name it, and alpha, mips,
# parisc and sparc number it differently, so there it stays off.
SO_TIMESTAMPNS = 35
_TIMESTAMPS = sys.platform == "linux" and platform.machine() in {
    "x86_64", "aarch64", "arm64", "armv7l", "armv8l", "i686", "riscv64", "s390x", "ppc64le"}
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)


class _TimestampedSocket(gevent.socket.socket):
    """geventhttpclient's plain connections; every read notes when its data arrived, and
    every request handed to the kernel lets the service run first."""

    def sendall(self, data: Any, flags: int = 0) -> None:
        super().sendall(data, flags)
        # On one machine (the local stack: the service's container beside this process) the
        # kernel wakes the service's thread on the sender's core, and there it waits until
        # the sender blocks or is preempted: after a send Locust has ~0.1 ms of Python to
        # run (the response object, its other users). The service's answer then measured
        # the generator's own work: on the wire (tcpdump), the service answered Locust's
        # requests in 0.29 ms at p50 and wrk's identical ones in 0.13 ms. Yielding the CPU
        # after the send lets the woken service run at once (0.08 ms on the wire at 4
        # users, where wrk's single thread, busy with its other connections, kept 0.23);
        # with the service elsewhere nothing else is runnable and it returns at once.
        os.sched_yield()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancillary, _flags, _address = self.recvmsg(bufsize, _ANCILLARY_SIZE, flags)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                times = _wire.get(gevent.getcurrent())
                if times is not None:
                    seconds, nanoseconds = _TIMESPEC.unpack(payload[:_TIMESPEC.size])
                    times.arrived = seconds + nanoseconds / 1e9
        return data


def _create_timestamped_socket(self: ConnectionPool, family: int, socktype: int,
                               protocol: int) -> gevent.socket.socket:
    sock = _TimestampedSocket(family, socktype, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        sock.close()
        return gevent.socket.socket(family, socktype, protocol)
    return sock


def _time_sending(get_socket: Callable[..., Any]) -> Callable[..., Any]:
    # geventhttpclient takes the connection right before it writes the request (any
    # connecting is done by then, as wrk's and k6's times leave it out too). The reported
    # request's entry is removed when Locust reports it, so one still here is the same
    # request going on: after a response (a redirect followed) the time runs from the first
    # hop, as Locust's does; after none (a retry on a new connection) it starts again.
    def timed(self: ConnectionPool) -> Any:
        sock = get_socket(self)
        current = gevent.getcurrent()
        times = _wire.get(current)
        if times is None or times.complete is None:
            _wire[current] = _WireTimes()
        else:
            times.complete = times.arrived = None
        return sock
    return timed


def _time_completion(on_message_complete: Callable[..., None]) -> Callable[..., None]:
    # Called by the parser while it is fed the block that ends the response.
    def timed(self: HTTPSocketResponse) -> None:
        times = _wire.get(gevent.getcurrent())
        if times is not None:
            times.complete = time.perf_counter()
        on_message_complete(self)
    return timed


if _TIMESTAMPS:
    # TLS connections read through the SSL object, not this recv: they keep the time their
    # greenlet read the response.
    ConnectionPool._create_tcp_socket = _create_timestamped_socket  # type: ignore[method-assign]
ConnectionPool.get_socket = _time_sending(ConnectionPool.get_socket)  # type: ignore[method-assign]
HTTPSocketResponse._on_message_complete = _time_completion(  # type: ignore[method-assign]
    HTTPSocketResponse._on_message_complete)


def _wire_ms(start_time: float | None) -> float | None:
    """This greenlet's last request timed at the connection, if it is the one reported:
    it began after the reported request did (not left over from an earlier one)."""
    times = _wire.pop(gevent.getcurrent(), None)
    if times is None or times.complete is None or start_time is None:
        return None
    if times.sent_wall < start_time:
        return None
    arrived = times.arrived
    if arrived is not None and times.sent_wall <= arrived <= time.time():
        return (arrived - times.sent_wall) * 1000
    return (times.complete - times.sent) * 1000


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float | None,
            start_time: float | None = None, **_: Any) -> None:
    endpoint = f"{request_type} {name}"
    wire_ms = _wire_ms(start_time)
    if wire_ms is not None:
        _at_connection[endpoint] += 1
    measured = wire_ms if wire_ms is not None else response_time
    if measured is None:
        return
    _histograms.setdefault(endpoint, Counter())[bucket_us(measured)] += 1


@events.report_to_master.add_listener
def _send(client_id: str, data: dict[str, Any]) -> None:
    data[REPORT_KEY] = _content()
    _histograms.clear()
    _at_connection.clear()


@events.worker_report.add_listener
def _merge(client_id: str, data: dict[str, Any]) -> None:
    report = data.get(REPORT_KEY, {})
    for name, histogram in report.get("latency_us", {}).items():
        merged = _histograms.setdefault(name, Counter())
        merged.update({int(micros): int(count) for micros, count in histogram.items()})
    _at_connection.update({name: int(n) for name, n in report.get("at_connection", {}).items()})
    _write()


def _content() -> dict[str, Any]:
    """What a worker reports and the file holds (``runbook.perf.stats.read_plugin_times``)."""
    return {"latency_us": {name: dict(h) for name, h in _histograms.items()},
            "at_connection": dict(_at_connection)}


def _write() -> None:
    if OUTPUT is None:
        return
    temporary = f"{OUTPUT}.tmp"
    with open(temporary, "w") as handle:
        json.dump(_content(), handle)
    os.replace(temporary, OUTPUT)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    # Fired just before the headless run schedules --run-time (see the module). Not in a
    # worker: there it kept the spawned users from starting.
    gevent.get_hub().loop.update_now()
    # The master's last worker reports arrive while Locust quits, after the quitting event:
    # writing on every report, and once more at exit, keeps the file complete.
    events.quitting.add_listener(lambda **_kw: _write())
    atexit.register(_write)
