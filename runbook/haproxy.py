"""HAProxy itself, without routes' persistence: the configuration text of the router's
processes, the runtime API (one command line over the admin socket), and process checks.

``runbook.router`` decides what each process serves; this module only says it in HAProxy's
terms, so the two can be read (and tested) apart."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path

from runbook.errors import TransientError

RUNTIME_API_TIMEOUT_S = 5.0
# A stopped route's listeners are gone at once (soft stop); its process leaves after its
# last connection, within HARD_STOP_AFTER at the latest.
HARD_STOP_AFTER = "30s"


def global_section(socket_path: Path) -> list[str]:
    """``global`` and ``defaults`` of every router process: one thread each (many small
    processes on few cores), its own admin socket."""
    return [
        "global",
        f"    stats socket {socket_path} mode 600 level admin",
        "    maxconn 4096",
        "    nbthread 1",
        f"    hard-stop-after {HARD_STOP_AFTER}",
        "",
        "defaults",
        "    mode http",
        "    option idle-close-on-response",
        "    option redispatch",
        "    retries 3",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 10s",
        "",
    ]


def metrics_frontend(host: str, port: int) -> list[str]:
    """The Prometheus exporter at ``/metrics`` and the stats page at ``/stats``."""
    return [
        "frontend metrics",
        f"    bind {host}:{port}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /stats",
        "",
    ]


def server_line(name: str, address: str, enabled: bool) -> str:
    return f"    server {name} {address}{'' if enabled else ' disabled'}"


def route_sections(host: str, key: str, ports: tuple[int, int], live: Iterable[str],
                   preview: Iterable[str]) -> list[str]:
    """A route's endpoint and preview frontends and their backends, named ``key`` and
    ``key.preview`` (the exporter's ``proxy`` label the queries and alert rules select on);
    ``live`` and ``preview`` are their server lines."""
    port, preview_port = ports
    return [
        f"frontend {key}",
        f"    bind {host}:{port}",
        f"    default_backend {key}",
        "",
        f"frontend {key}.preview",
        f"    bind {host}:{preview_port}",
        f"    default_backend {key}.preview",
        "",
        f"backend {key}",
        "    balance roundrobin",
        *live,
        "",
        f"backend {key}.preview",
        "    balance roundrobin",
        *preview,
        "",
    ]


def runtime_at(socket_path: Path, command: str) -> str:
    """Send one command line to the runtime API at ``socket_path``; its reply."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(RUNTIME_API_TIMEOUT_S)
            sock.connect(str(socket_path))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise TransientError(f"haproxy runtime API at {socket_path}: {exc}") from exc
    return b"".join(chunks).decode(errors="replace")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0
