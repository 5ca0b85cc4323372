"""Running every scanner of one service concurrently (threads over subprocesses), so the
stage takes about as long as its slowest scanner, not the sum."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field

from runbook.errors import ConfigurationError
from runbook.models import Finding
from runbook.policy import ScanSettings
from runbook.scan import (
    bandit,
    deps,
    dockerfile,
    lint,
    manifests,
    secrets,
    suppressions,
    trivy,
)
from runbook.scan import sbom as sbom_model
from runbook.scan.manifests import Pin
from runbook.scan.models import (
    Coverage,
    ScannerResult,
    ScannerStatus,
    ScanOutputError,
    ScanReport,
)
from runbook.scan.process import ToolMissing, find_program, run_tool
from runbook.scan.sbom import Sbom

Findings = Callable[[], list[Finding]]


class _Unavailable(Exception):
    pass


class _NotApplicable(Exception):
    pass


class ImageTarget(BaseModel):
    """The image the scan looks at, and where its outputs (the SBOM) go."""

    reference: str  # repository@sha256:...
    output_dir: Path | None = None  # None: a temporary directory, the SBOM is not kept
    options: trivy.Options = Field(default_factory=trivy.Options)


def scanners(source_dir: Path, dockerfile_path: Path, image: str,
             policy: ScanSettings) -> dict[str, Findings]:
    """Each scanner of the stage that needs no other's output, by name, as a call that
    returns findings or raises."""
    timeout = policy.scanner_timeout_s
    return {
        "bandit": lambda: bandit.scan(source_dir, timeout),
        "detect-secrets": lambda: secrets.scan(source_dir, timeout),
        "dockerfile": lambda: dockerfile.scan(dockerfile_path, timeout),
        "ruff": lambda: lint.ruff_scan(source_dir, policy.ruff_select, policy.ruff_severities,
                                       timeout),
        "shellcheck": lambda: lint.shellcheck_scan(source_dir, timeout),
        "dependencies": lambda: _dependencies(source_dir, policy),
    }


def run_all(calls: dict[str, Findings]) -> list[ScannerResult]:
    """Run the calls concurrently; one result each, in the given order."""
    with ThreadPoolExecutor(max_workers=len(calls) or 1) as pool:
        futures = {name: pool.submit(_timed, name, call) for name, call in calls.items()}
        return [futures[name].result() for name in calls]


def scan_service(service: str, environment: str, source_dir: Path, dockerfile_path: Path,
                 image: str | ImageTarget, policy: ScanSettings, coverage: Coverage,
                 today: date | None = None) -> ScanReport:
    """Every scanner, then the service's suppressions. The I/O half of the scan stage.

    The image job (Trivy, then what reads its SBOM) runs beside the source scanners."""
    target = image if isinstance(image, ImageTarget) else ImageTarget(
        reference=image, options=trivy_options(policy))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scan-") as scratch, \
            ThreadPoolExecutor(max_workers=1) as image_worker:
        image_job = image_worker.submit(_image_job, target,
                                        target.output_dir or Path(scratch), policy)
        results = run_all(scanners(source_dir, dockerfile_path, target.reference, policy))
        image_results, sbom = image_job.result()
        if sbom is not None and target.output_dir is None:
            sbom.path = None  # the scratch directory goes away
    wall = time.perf_counter() - started
    results += image_results
    for result in results:
        result.findings = lint.rerate(result.findings, policy.rule_severities)
    suppressed_all, expired = suppressions.apply_to_results(
        results, suppressions.load(source_dir), today or date.today())
    return ScanReport(service=service, environment=environment, image=target.reference,
                      results=results, suppressed=suppressed_all, expired_suppressions=expired,
                      coverage=coverage, sbom=sbom, wall_time_s=round(wall, 3))


def trivy_options(policy: ScanSettings, docker_host: str | None = None) -> trivy.Options:
    return trivy.Options(image_sources=policy.trivy_image_sources,
                         cache_dir=policy.trivy_cache_dir,
                         skip_db_update=policy.trivy_skip_db_update, docker_host=docker_host,
                         timeout_s=policy.scanner_timeout_s)


def _image_job(target: ImageTarget, output_dir: Path, policy: ScanSettings
               ) -> tuple[list[ScannerResult], Sbom | None]:
    """Trivy on the image, then the Python packages of the SBOM it wrote."""
    scan = trivy.scan_image(target.reference, target.options, output_dir)
    sbom = None
    if scan.sbom_path is not None:
        try:
            components = sbom_model.parse_cyclonedx(Path(scan.sbom_path).read_text())
            sbom = Sbom(path=scan.sbom_path, components=components)
        except (OSError, ScanOutputError) as exc:
            scan.results[0].detail += f"; SBOM unreadable: {exc}"
    audited = _timed("image-dependencies", lambda: _image_dependencies(sbom, policy))
    return [*scan.results, audited], sbom


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
    except (_NotApplicable, lint.NothingToLint) as exc:
        status, detail = ScannerStatus.NOT_APPLICABLE, str(exc)
    except ConfigurationError as exc:
        # A scanner that ran but gave no usable report cannot vouch for anything.
        status, detail = ScannerStatus.UNAVAILABLE, str(exc)
    except ScanOutputError as exc:
        status, detail = ScannerStatus.UNAVAILABLE, str(exc)
    return ScannerResult(scanner=name, status=status, findings=findings, detail=detail,
                         duration_s=round(time.perf_counter() - started, 3))


def _dependencies(source_dir: Path, policy: ScanSettings) -> list[Finding]:
    """Every Python manifest of the service, audited together."""
    found = manifests.declared(source_dir)
    if not found.manifests:
        raise _NotApplicable("no Python manifest (requirements*.txt, pyproject.toml, "
                             "poetry.lock, uv.lock): no third-party dependencies declared")
    if found.unpinned:
        raise ScanOutputError("cannot audit a range: not pinned (==) in a manifest or lock "
                              "file: " + ", ".join(found.unpinned[:5]))
    return audit(found.pins, policy)


def _image_dependencies(sbom: Sbom | None, policy: ScanSettings) -> list[Finding]:
    """The Python packages the image really ships (its SBOM), audited like the manifests."""
    if sbom is None:
        raise _Unavailable("no SBOM of the image (Trivy could not make one)")
    pins = manifests.sbom_pins(sbom.components)
    if not pins:
        raise _NotApplicable("the image SBOM lists no Python package")
    return audit(pins, policy)


def audit(pins: list[Pin], policy: ScanSettings) -> list[Finding]:
    """pip-audit where its service answers for every pin, else the offline OSV database,
    else unavailable."""
    why = "pip-audit not installed"
    text = deps.requirements_text(pins)
    try:
        program = find_program("pip-audit")
        if text is None:
            raise deps.ServiceUnreachable("pip-audit skipped: one package pinned at two "
                                          "versions")
        if not text:
            return []
        with tempfile.TemporaryDirectory(prefix="pip-audit-") as work:
            manifest = Path(work) / "requirements.txt"
            manifest.write_text(text)
            argv = deps.pip_audit_command(program, manifest, policy.scanner_timeout_s)
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
    return deps.match_osv(pins, records, policy.unrated_vulnerability_severity)
