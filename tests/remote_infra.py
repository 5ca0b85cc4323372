"""Remote-shaped infrastructure for end-to-end tests, on 127.0.0.2 (another loopback
address, so nothing can reach it through 127.0.0.1 by accident): a CA made here, a
registry with TLS and htpasswd auth (``docker-registry serve``), a Prometheus behind TLS
and basic auth (``--web.config.file``) that scrapes the local router's exporter as the
stack's Prometheus does, with a query log (what verification read), and a Pushgateway
behind the same TLS and login. Everything it starts
and writes is removed afterwards, including the Docker engine's trust of the CA.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trustme
import yaml

from runbook.settings import StackSettings
from runbook.stack.configs import router_job

HOST = "127.0.0.2"
START_DEADLINE_S = 60
REGISTRY_USER = "ci"
PROMETHEUS_USER = "runbook"
DOCKER_CERTS = Path("/etc/docker/certs.d")


@dataclass(frozen=True)
class RemoteInfra:
    ca_file: Path
    registry_url: str
    registry_password: str
    prometheus_url: str
    prometheus_password: str
    query_log: Path
    pushgateway_url: str

    @property
    def registry_host(self) -> str:
        return self.registry_url.removeprefix("https://")

    def queries(self) -> list[str]:
        """Every PromQL expression this Prometheus evaluated (its query log)."""
        if not self.query_log.exists():
            return []
        import json

        return [json.loads(line)["params"]["query"]
                for line in self.query_log.read_text().splitlines() if line.strip()]


def free_port(host: str = HOST) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def htpasswd() -> str:
    """The htpasswd program (Debian apache2-utils), installed when missing (as root)."""
    program = shutil.which("htpasswd")
    if program is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "apache2-utils"], check=True,
                       capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        program = shutil.which("htpasswd")
    if program is None:
        raise RuntimeError("htpasswd is not installed (Debian: apt-get install apache2-utils)")
    return program


def bcrypt_line(user: str, password: str) -> str:
    """``user:$2y$...``: a bcrypt htpasswd line (registry and Prometheus both take it)."""
    done = subprocess.run([htpasswd(), "-nbB", user, password], check=True,
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


@contextmanager
def remote_infra(settings: StackSettings) -> Iterator[RemoteInfra]:
    work = Path(tempfile.mkdtemp(prefix="runbook-remote-"))
    try:
        ca = trustme.CA()
        server = ca.issue_cert(HOST)
        ca_file, cert, key = work / "ca.pem", work / "server.pem", work / "server-key.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        server.cert_chain_pems[0].write_to_path(str(cert))
        server.private_key_pem.write_to_path(str(key))
        with ExitStack() as started:
            registry_url, registry_password = started.enter_context(
                _registry(work, ca_file, cert, key))
            prometheus_url, prometheus_password, query_log = started.enter_context(
                _prometheus(work, ca_file, cert, key, settings))
            pushgateway_url = started.enter_context(_pushgateway(work, ca_file, cert, key))
            yield RemoteInfra(ca_file, registry_url, registry_password, prometheus_url,
                              prometheus_password, query_log, pushgateway_url)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _registry(work: Path, ca_file: Path, cert: Path, key: Path) -> Iterator[tuple[str, str]]:
    password = f"reg-{os.urandom(6).hex()}"
    (work / "htpasswd").write_text(bcrypt_line(REGISTRY_USER, password) + "\n")
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(work / "registry")},
                    "delete": {"enabled": True}},
        "http": {"addr": f"{HOST}:{port}", "tls": {"certificate": str(cert), "key": str(key)}},
        "auth": {"htpasswd": {"realm": "runbook-test", "path": str(work / "htpasswd")}},
    }
    (work / "registry.yml").write_text(yaml.safe_dump(config))
    # The engine pushes and pulls over TLS only to registries whose CA it trusts.
    trust = DOCKER_CERTS / f"{HOST}:{port}"
    trust.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca_file, trust / "ca.crt")
    url = f"https://{HOST}:{port}"
    process = _start(["docker-registry", "serve", str(work / "registry.yml")],
                     work / "registry.log")
    try:
        _wait_until_up(process, f"{url}/v2/", ca_file, work / "registry.log", expect=401)
        yield url, password
    finally:
        _stop(process)
        shutil.rmtree(trust, ignore_errors=True)


@contextmanager
def _prometheus(work: Path, ca_file: Path, cert: Path, key: Path, settings: StackSettings
                ) -> Iterator[tuple[str, str, Path]]:
    password = f"prom-{os.urandom(6).hex()}"
    _, _, hashed = bcrypt_line(PROMETHEUS_USER, password).partition(":")
    web = {"tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
           "basic_auth_users": {PROMETHEUS_USER: hashed}}
    (work / "web.yml").write_text(yaml.safe_dump(web))
    query_log = work / "queries.log"
    interval = f"{settings.scrape_interval_s}s"
    # The router's exporters, found as runbook.stack's Prometheus finds them.
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "query_log_file": str(query_log)},
        "scrape_configs": [router_job(settings)],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"https://{HOST}:{port}"
    log = work / "prometheus.log"
    process = _start([
        "prometheus", f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address={HOST}:{port}",
        f"--web.config.file={work / 'web.yml'}",
    ], log)
    try:
        _wait_until_up(process, f"{url}/-/ready", ca_file, log, expect=401)
        yield url, password, query_log
    finally:
        _stop(process)


@contextmanager
def _pushgateway(work: Path, ca_file: Path, cert: Path, key: Path) -> Iterator[str]:
    """A Pushgateway behind TLS and the same basic-auth login as the Prometheus."""
    port = free_port()
    url = f"https://{HOST}:{port}"
    log = work / "pushgateway.log"
    process = _start(["prometheus-pushgateway", f"--web.listen-address={HOST}:{port}",
                      f"--web.config.file={work / 'web.yml'}"], log)
    try:
        _wait_until_up(process, f"{url}/-/ready", ca_file, log, expect=401)
        yield url
    finally:
        _stop(process)


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, ca_file: Path, log: Path,
                   expect: int) -> None:
    """Until ``url`` answers (``expect``: the status an unauthenticated request gets)."""
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited: {log.read_text()[-2000:]}")
        try:
            trust = ssl.create_default_context(cafile=str(ca_file))
            if httpx.get(url, verify=trust, timeout=2).status_code == expect:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    _stop(process)
    raise RuntimeError(f"{url} not up within {START_DEADLINE_S} s: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
