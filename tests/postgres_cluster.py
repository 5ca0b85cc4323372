"""A private PostgreSQL cluster for tests: initdb in a temporary directory, its own port,
loopback only, trust authentication, stopped and removed afterwards.

PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user
(Debian's ``postgresql`` package creates it; it is installed when missing, as the stack
installs its parts).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_DEADLINE_S = 60


def _bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda path: int(path.parent.name))
    if candidates:
        return candidates[-1]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], check=True, env=environment,
                       timeout=600, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=True,
                       env=environment, timeout=600, capture_output=True)
        return _bin_dir()
    raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_cluster_user(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout)


@contextmanager
def postgres_cluster(database: str = "runbook", user: str = "runbook") -> Iterator[str]:
    """Start a cluster; yields ``postgresql+psycopg://user@127.0.0.1:PORT/database``."""
    bin_dir = _bin_dir()
    work = Path(tempfile.mkdtemp(prefix="runbook-pg-"))
    if os.geteuid() == 0:
        os.chown(work, pwd.getpwnam("postgres").pw_uid, -1)
    data, port = work / "data", _free_port()
    _as_cluster_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", user],
                     timeout=120)
    _as_cluster_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t",
                      str(START_DEADLINE_S), "-l", str(work / "postgres.log"), "-o",
                      f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off",
                      "start"], timeout=START_DEADLINE_S + 10)
    try:
        _wait_accepting(port)
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U",
                        user, database], check=True, capture_output=True, timeout=30)
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/{database}"
    finally:
        _as_cluster_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                          "stop"], timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def _wait_accepting(port: int) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL on port {port} did not accept connections")
