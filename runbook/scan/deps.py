"""Dependencies: pip-audit where its vulnerability service answers, an offline OSV database
directory as the alternative, neither -> unavailable.

pip-audit marks a dependency it could not look up with ``skip_reason`` and still exits 0
("No known vulnerabilities found"): a skipped dependency is not a clean one, so any skip
makes the pip-audit result unusable and the OSV database (or `unavailable`) decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from runbook.models import Finding, Severity
from runbook.scan.errors import ScanOutputError
from runbook.scan.manifests import Pin

PIP_AUDIT = "pip-audit"
OSV = "osv"
# GHSA records rate in database_specific.severity; MODERATE is GitHub's word for medium.
_OSV_SEVERITY = {"CRITICAL": Severity.CRITICAL, "HIGH": Severity.HIGH,
                 "MODERATE": Severity.MEDIUM, "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}


class ServiceUnreachable(Exception):
    """pip-audit could not audit (some of) the dependencies: its service did not answer."""


def pip_audit_command(program: str, manifest: Path, timeout_s: float) -> list[str]:
    # --no-deps/--disable-pip: audit the pinned list as written, no resolver, no installs.
    return [program, "-r", str(manifest), "--format", "json", "--progress-spinner", "off",
            "--no-deps", "--disable-pip", "--timeout", str(int(max(timeout_s, 1)))]


def parse_pip_audit(report: str, unrated: Severity) -> list[Finding]:
    """pip-audit's ``--format json`` report (current object form or legacy list form).

    Raises ScanOutputError on malformed input, ServiceUnreachable when a dependency was
    skipped (not looked up).
    """
    try:
        document = json.loads(report)
        dependencies = document["dependencies"] if isinstance(document, dict) else document
        skipped = [d["name"] for d in dependencies if d.get("skip_reason")]
        findings = [
            _pip_audit_finding(dep, vuln, unrated)
            for dep in dependencies if not dep.get("skip_reason")
            for vuln in dep.get("vulns", [])
        ]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ScanOutputError(f"pip-audit: unreadable JSON report ({exc!r})") from exc
    if skipped:
        raise ServiceUnreachable(f"pip-audit could not audit {len(skipped)} dependency(ies): "
                                 + ", ".join(sorted(skipped)[:5]))
    return findings


def _pip_audit_finding(dep: dict[str, Any], vuln: dict[str, Any], unrated: Severity) -> Finding:
    fixes = [str(v) for v in vuln.get("fix_versions") or []]
    aliases = ", ".join(vuln.get("aliases") or [])
    return Finding(
        tool=PIP_AUDIT,
        rule_id=str(vuln["id"]),
        severity=unrated,  # pip-audit reports no severity
        title=f"{vuln['id']} in {dep['name']}" + (f" ({aliases})" if aliases else ""),
        location=f"{canonicalize_name(dep['name'])}@{dep['version']}",
        fixed_version=fixes[0] if fixes else None,
    )


def load_osv_database(directory: Path) -> list[dict[str, Any]]:
    """Every OSV record (``*.json``, e.g. the unzipped ``PyPI/all.zip`` export) under a
    directory. Raises ScanOutputError naming the first unreadable record."""
    records = []
    for path in sorted(directory.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ScanOutputError(f"osv: {path.name} is not a JSON OSV record ({exc})") from exc
        if not isinstance(record, dict) or "id" not in record:
            raise ScanOutputError(f"osv: {path.name} has no 'id': not an OSV record")
        records.append(record)
    return records


def match_osv(pins: list[Pin], records: list[dict[str, Any]],
                   unrated: Severity) -> list[Finding]:
    """One finding per record and affected ``name@version``, naming every manifest (or the
    image SBOM) that pins it (pure)."""
    sources: dict[tuple[str, str], list[str]] = {}
    for pin in pins:
        where = sources.setdefault((canonicalize_name(pin.name), pin.version), [])
        if pin.source and pin.source not in where:
            where.append(pin.source)
    findings = []
    for record in records:
        for affected in record.get("affected", []):
            package = affected.get("package", {})
            if package.get("ecosystem") != "PyPI":
                continue
            name = canonicalize_name(str(package.get("name", "")))
            for (pinned, version), where in sources.items():
                if pinned == name and _affects(affected, version):
                    finding = _osv_finding(record, affected, name, version, unrated)
                    if where:
                        finding.title += f" (in {', '.join(where)})"
                    findings.append(finding)
    return findings


def requirements_text(pins: list[Pin]) -> str | None:
    """One ``name==version`` line per package for pip-audit, or None when two manifests pin
    one package at different versions (one requirements file cannot hold both)."""
    versions: dict[str, set[str]] = {}
    for pin in pins:
        versions.setdefault(canonicalize_name(pin.name), set()).add(pin.version)
    if any(len(found) > 1 for found in versions.values()):
        return None
    return "".join(f"{name}=={next(iter(found))}\n" for name, found in sorted(versions.items()))


def _affects(affected: dict[str, Any], version: str) -> bool:
    if version in affected.get("versions", []):
        return True
    try:
        current = Version(version)
    except InvalidVersion:
        return False
    return any(_in_range(r.get("events", []), current)
               for r in affected.get("ranges", []) if r.get("type") == "ECOSYSTEM")


def _in_range(events: list[dict[str, str]], current: Version) -> bool:
    """OSV range semantics: sorted introduced/fixed/last_affected events."""
    inside = False
    for event in sorted(events, key=_event_version):
        if "introduced" in event and _event_version(event) <= current:
            inside = True
        elif ("fixed" in event and Version(event["fixed"]) <= current) or (
            "last_affected" in event and Version(event["last_affected"]) < current
        ):
            inside = False
    return inside


def _event_version(event: dict[str, str]) -> Version:
    value = next(iter(event.values()))
    return Version("0") if value == "0" else Version(value)


def _osv_finding(record: dict[str, Any], affected: dict[str, Any], name: str, version: str,
                 unrated: Severity) -> Finding:
    rating = str(record.get("database_specific", {}).get("severity", "")).upper()
    fixed = [e["fixed"] for r in affected.get("ranges", []) for e in r.get("events", [])
             if "fixed" in e]
    return Finding(
        tool=OSV,
        rule_id=str(record["id"]),
        severity=_OSV_SEVERITY.get(rating, unrated),
        title=str(record.get("summary") or record["id"]),
        location=f"{name}@{version}",
        fixed_version=fixed[-1] if fixed else None,
    )
