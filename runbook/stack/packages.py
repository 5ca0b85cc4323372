"""The programs the stack runs and the Debian packages that ship them: finding a program
(sbin directories included), installing missing ones with apt where that is possible (root on
Debian/Ubuntu; elsewhere the error names the packages), and stopping the system services a
package starts on the stack's ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from runbook.errors import ConfigurationError, TransientError
from runbook.settings import StackSettings
from runbook.stack.processes import log_tail
from runbook.stack.records import ProgressCallback, ignore_progress

APT_UPDATE_TIMEOUT_S = 600.0
APT_INSTALL_TIMEOUT_S = 1200.0
APT_LOCK_TIMEOUT_S = 300  # a fresh CI machine may still run unattended-upgrades
SERVICE_CONTROL_TIMEOUT_S = 60.0

# Program -> Debian package that ships it.
PACKAGE_OF_PROGRAM: dict[str, str] = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "haproxy": "haproxy",
    "debootstrap": "debootstrap",
    "iptables": "iptables",
}

# Packages whose install starts a system service on our ports (9090, 9093, 9091, 5000) where
# an init system runs. The Docker service is not listed: a running engine is reused as is.
PACKAGED_SERVICES: dict[str, str] = {
    "docker-registry": "docker-registry",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "haproxy": "haproxy",
}

# Programs often live in sbin directories that a non-root PATH lacks.
_SBIN_DIRECTORIES = ("/usr/local/sbin", "/usr/sbin", "/sbin")

_apt_updated = False


def packages_for(programs: Iterable[str]) -> list[str]:
    """Debian packages that provide the given programs, sorted, without duplicates."""
    return sorted({PACKAGE_OF_PROGRAM.get(program, program) for program in programs})


def missing_programs(programs: Iterable[str]) -> list[str]:
    return sorted({program for program in programs if find_program(program) is None})


def find_program(name: str) -> str | None:
    """Full path of a program on PATH or in the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRECTORIES])
    return shutil.which(name, path=search)


def program(name: str) -> str:
    """Full path of a program the stack needs; ConfigurationError naming its package."""
    path = find_program(name)
    if path is None:
        package = PACKAGE_OF_PROGRAM.get(name, name)
        raise ConfigurationError(f"missing program {name} (Debian/Ubuntu package {package})")
    return path


def can_install_packages() -> bool:
    """True when missing programs can be installed here: root on Debian or Ubuntu."""
    return (
        Path("/etc/debian_version").exists()
        and os.geteuid() == 0
        and shutil.which("apt-get") is not None
    )


def ensure_programs(
    programs: Sequence[str], settings: StackSettings, on_progress: ProgressCallback | None = None
) -> None:
    """Install the Debian packages of missing programs, or say exactly what to install."""
    report = on_progress or ignore_progress
    missing = missing_programs(programs)
    if not missing:
        return
    packages = packages_for(missing)
    if not can_install_packages():
        raise ConfigurationError(
            f"missing programs: {', '.join(missing)}",
            hint=f"install the packages {', '.join(packages)} (Debian/Ubuntu names), or run "
                 "as root on Debian/Ubuntu to have them installed",
            reference="README.md#the-local-stack")
    report(f"installing {', '.join(packages)}…")
    _apt_install(packages, settings.path("logs", "apt.log"))
    still_missing = missing_programs(missing)
    if still_missing:
        raise ConfigurationError(
            f"installed {', '.join(packages)} but still missing: {', '.join(still_missing)}"
        )
    _stop_packaged_services(packages, report)


def run_logged(
    command: list[str],
    log_path: Path,
    timeout_s: float,
    environment: Mapping[str, str] | None = None,
) -> int:
    """Run ``command`` with its output appended to ``log_path``; return its exit code.

    TransientError when it does not finish within ``timeout_s``.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=environment, timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TransientError(
                f"{Path(command[0]).name} did not finish within {timeout_s:.0f} s; "
                f"log: {log_path}"
            ) from exc
    return result.returncode


def _apt_install(packages: Sequence[str], log_path: Path) -> None:
    global _apt_updated
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S}"
    if not _apt_updated:
        _apt(["apt-get", "-o", lock, "update"], log_path, environment, APT_UPDATE_TIMEOUT_S)
        _apt_updated = True
    _apt(
        ["apt-get", "-o", lock, "install", "-y", "--no-install-recommends", *packages],
        log_path,
        environment,
        APT_INSTALL_TIMEOUT_S,
    )


def _apt(
    command: list[str], log_path: Path, environment: dict[str, str], timeout_s: float
) -> None:
    code = run_logged(command, log_path, timeout_s, environment)
    if code != 0:
        raise TransientError(
            f"{' '.join(command[:4])}… failed with code {code}; "
            f"log: {log_path}; last lines: {log_tail(log_path)}"
        )


def _stop_packaged_services(packages: Sequence[str], report: ProgressCallback) -> None:
    """Stop the system services that package installation may have started on our ports."""
    services = [PACKAGED_SERVICES[p] for p in packages if p in PACKAGED_SERVICES]
    systemd = Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None
    for service in services:
        if systemd:
            command = ["systemctl", "disable", "--now", f"{service}.service"]
        elif Path("/etc/init.d", service).exists() and shutil.which("invoke-rc.d"):
            command = ["invoke-rc.d", service, "stop"]
        else:
            continue
        report(f"stopping the packaged {service} service (the stack runs its own)…")
        # A service that never started (policy-rc.d refused it) fails to stop: that is fine.
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True,
                timeout=SERVICE_CONTROL_TIMEOUT_S, check=False,
            )
