"""Running every scanner of one service concurrently (threads over subprocesses), so the
stage takes about as long as its slowest scanner, not the sum."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from runbook.errors import ConfigurationError
from runbook.models import Finding
from runbook.policy import ScanSettings
from runbook.scan import bandit, deps, dockerfile, secrets, suppressions, trivy
from runbook.scan.models import (
    Coverage,
    ScannerResult,
    ScannerStatus,
    ScanOutputError,
    ScanReport,
)
from runbook.scan.process import ToolMissing, find_program, run_tool

Scanner = Callable[[], ScannerResult]


class _Unavailable(Exception):
    pass


class _NotApplicable(Exception):
    pass


def scanners(source_dir: Path, dockerfile_path: Path, image: str,
             policy: ScanSettings) -> dict[str, Callable[[], list[Finding]]]:
    """Each scanner of the stage, by name, as a call that returns findings or raises."""
    timeout = policy.scanner_timeout_s
    return {
        "bandit": lambda: bandit.scan(source_dir, timeout),
        "detect-secrets": lambda: secrets.scan(source_dir, timeout),
        "dockerfile": lambda: dockerfile.scan(dockerfile_path, timeout),
        "dependencies": lambda: _dependencies(source_dir, policy),
        "trivy": lambda: _trivy(image, policy),
    }


def run_all(calls: dict[str, Callable[[], list[Finding]]]) -> list[ScannerResult]:
    """Run the calls concurrently; one result each, in the given order."""
    with ThreadPoolExecutor(max_workers=len(calls) or 1) as pool:
        futures = {name: pool.submit(_timed, name, call) for name, call in calls.items()}
        return [futures[name].result() for name in calls]


def scan_service(service: str, environment: str, source_dir: Path, dockerfile_path: Path,
                 image: str, policy: ScanSettings, coverage: Coverage,
                 today: date | None = None) -> ScanReport:
    """Every scanner, then the service's suppressions. The I/O half of the scan stage."""
    started = time.perf_counter()
    results = run_all(scanners(source_dir, dockerfile_path, image, policy))
    wall = time.perf_counter() - started
    entries = suppressions.load(source_dir)
    suppressed_all: list[Finding] = []
    expired = []
    for result in results:
        kept, suppressed, expired = suppressions.apply(
            result.findings, entries, today or date.today()
        )
        result.findings = kept
        suppressed_all += suppressed
    return ScanReport(service=service, environment=environment, image=image, results=results,
                      suppressed=suppressed_all, expired_suppressions=expired,
                      coverage=coverage, wall_time_s=round(wall, 3))


def _timed(name: str, call: Callable[[], list[Finding]]) -> ScannerResult:
    started = time.perf_counter()
    status, findings, detail = ScannerStatus.OK, [], ""
    try:
        findings = call()
        detail = f"{len(findings)} finding(s)"
    except (ToolMissing, _Unavailable) as exc:
        status, detail = ScannerStatus.UNAVAILABLE, str(exc)
    except subprocess.TimeoutExpired as exc:
        status, detail = ScannerStatus.UNAVAILABLE, f"timed out after {exc.timeout} s"
    except _NotApplicable as exc:
        status, detail = ScannerStatus.NOT_APPLICABLE, str(exc)
    except ConfigurationError as exc:
        # A scanner that ran but gave no usable report cannot vouch for anything.
        status, detail = ScannerStatus.UNAVAILABLE, str(exc)
    except ScanOutputError as exc:
        status, detail = ScannerStatus.UNAVAILABLE, str(exc)
    return ScannerResult(scanner=name, status=status, findings=findings, detail=detail,
                         duration_s=round(time.perf_counter() - started, 3))


def _dependencies(source_dir: Path, policy: ScanSettings) -> list[Finding]:
    manifest = source_dir / deps.MANIFEST
    if not manifest.is_file():
        raise _NotApplicable(f"no {deps.MANIFEST}: no third-party dependencies declared")
    why = "pip-audit not installed"
    try:
        argv = deps.pip_audit_command(find_program("pip-audit"), manifest,
                                      policy.scanner_timeout_s)
        code, stdout, stderr = run_tool(argv, policy.scanner_timeout_s)
        if stdout.strip():
            return deps.parse_pip_audit(stdout, policy.unrated_vulnerability_severity)
        why = f"pip-audit exited {code}: {stderr.strip()[-200:]}"
    except ToolMissing:
        pass
    except deps.ServiceUnreachable as exc:
        why = str(exc)
    if policy.osv_database_dir is None or not Path(policy.osv_database_dir).is_dir():
        raise _Unavailable(f"{why}; no offline OSV database (scan.osv_database_dir)")
    records = deps.load_osv_database(Path(policy.osv_database_dir))
    return deps.match_osv(deps.pinned_requirements(manifest), records,
                          policy.unrated_vulnerability_severity)


def _trivy(image: str, policy: ScanSettings) -> list[Finding]:
    try:
        program = find_program("trivy")
    except ToolMissing as exc:
        raise _Unavailable("trivy is not on PATH") from exc
    code, stdout, stderr = run_tool(trivy.command(program, image, policy.scanner_timeout_s),
                                    policy.scanner_timeout_s + 10)
    if code != 0:
        raise _Unavailable(f"trivy exited {code}: {stderr.strip()[-200:]}")
    return trivy.parse(stdout, policy.unrated_vulnerability_severity)
