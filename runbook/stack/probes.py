"""Health probes of the stack's components and the clients they use: loopback HTTP (never
through a proxy), the Docker engine, and whether a TCP port or unix socket answers."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import docker
import httpx
from docker.errors import DockerException

from runbook.errors import TransientError
from runbook.settings import StackSettings
from runbook.stack.records import Probe

HTTP_TIMEOUT_S = 2.0
DOCKER_PING_TIMEOUT_S = 5.0
DOCKER_CLIENT_TIMEOUT_S = 120.0


def docker_client(
    settings: StackSettings, timeout: float = DOCKER_CLIENT_TIMEOUT_S
) -> docker.DockerClient:
    """A client of the stack's Docker engine; TransientError when it does not answer."""
    try:
        return docker.DockerClient(base_url=settings.docker_host, timeout=timeout)
    except DockerException as exc:
        raise TransientError(f"Docker engine at {settings.docker_host}: {exc}") from exc


def loopback_http() -> httpx.Client:
    # Every component is on loopback: a proxy from the environment must not see these calls.
    return httpx.Client(timeout=HTTP_TIMEOUT_S, trust_env=False)


def probe_http(url: str) -> Probe:
    try:
        with loopback_http() as http:
            response = http.get(url)
    except httpx.HTTPError as exc:
        return Probe(False, f"GET {url}: {type(exc).__name__} {exc}".strip())
    if response.status_code == 200:
        return Probe(True, f"GET {url} -> 200")
    return Probe(False, f"GET {url} -> {response.status_code}")


def probe_docker(docker_host: str) -> Probe:
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=DOCKER_PING_TIMEOUT_S)
        try:
            client.ping()
            version = client.version().get("Version", "?")
        finally:
            client.close()
    except (DockerException, OSError) as exc:
        reason = _docker_failure(docker_host, exc)
        return Probe(False, f"no Docker engine at {docker_host}: {reason}")
    return Probe(True, f"Docker engine {version}")


def _docker_failure(docker_host: str, exc: Exception) -> str:
    socket_path = unix_socket_path(docker_host)
    if socket_path is not None and not socket_path.exists():
        return "no socket"
    return str(exc)[:200]


def tcp_port_answers(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def unix_socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(str(path)) == 0


def unix_socket_path(docker_host: str) -> Path | None:
    parts = urlsplit(docker_host)
    if parts.scheme == "unix":
        return Path(parts.path)
    if not parts.scheme and docker_host.startswith("/"):
        return Path(docker_host)
    return None
