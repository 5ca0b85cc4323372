"""A Prometheus of a test's own: the stack's binary, a given configuration, a free port.

The shared stack's configuration is re-rendered by every checkout that runs `stack up`; a
test that depends on one job (app discovery) or on relabelling runs its own server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def private_prometheus(config: dict, directory: Path, host: str, port: int) -> Iterator[str]:
    """Run Prometheus with ``config`` until the block ends; yields its URL."""
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://{host}:{port}"
    with (directory / "log").open("wb") as log:
        process = subprocess.Popen(
            ["prometheus", f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address={host}:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not _ready(url):
                assert process.poll() is None, (directory / "log").read_text()[-2000:]
                assert time.monotonic() < deadline, "prometheus not ready in 60 s"
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).is_success
    except httpx.HTTPError:
        return False
