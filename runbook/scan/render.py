"""What people and the alerting work see of a scan: table rows and the critical event."""

from __future__ import annotations

from typing import Any

from runbook.models import Gate, Severity
from runbook.scan.models import ScanReport
from runbook.scan.sbom import Sbom, SbomDiff

CRITICAL_EVENT = "runbook.scan.critical"


def table_rows(report: ScanReport, gates: list[Gate]) -> list[dict[str, str]]:
    """Rows of the Prefect table artifact: gates first, then scanners, then findings."""
    rows = [_row("gate", g.name, "pass" if g.passed else "BLOCK",
                 f"{g.value} (threshold {g.threshold})" + (" warning" if g.warning else ""),
                 g.detail) for g in gates]
    rows += [_row("scanner", r.scanner, r.status.value, f"{r.duration_s:.2f} s", r.detail)
             for r in report.results]
    rows += [_row(f.tool, f.rule_id, f.severity.value, f.location,
                  f.title + (f" (fix: {f.fixed_version})" if f.fixed_version else ""))
             for f in report.findings]
    rows += [_row(f.tool, f.rule_id, "suppressed", f.location, f.title)
             for f in report.suppressed]
    return rows


def sbom_rows(sbom: Sbom) -> list[dict[str, str]]:
    """Rows of the SBOM artifact: what changed since the previous release, then every
    package."""
    diff = sbom.diff or SbomDiff()
    rows = [{"change": "added", "name": c.name, "version": c.version, "type": c.type}
            for c in diff.added]
    rows += [{"change": "removed", "name": c.name, "version": c.version, "type": c.type}
             for c in diff.removed]
    rows += [{"change": f"changed from {u.previous}", "name": u.name, "version": u.current,
              "type": u.type} for u in diff.changed]
    rows += [{"change": "", "name": c.name, "version": c.version, "type": c.type}
             for c in sbom.components]
    return rows


def sbom_description(report: ScanReport) -> str:
    sbom = report.sbom
    if sbom is None:
        return f"no SBOM of {report.image}"
    where = sbom.path or "not stored"
    changes = sbom.diff.describe() if sbom.diff else "not compared"
    return (f"SBOM (CycloneDX) of {report.image}: {len(sbom.components)} packages; "
            f"{changes}; stored at {where}")


def critical_event(report: ScanReport) -> dict[str, Any] | None:
    """Arguments of ``prefect.events.emit_event`` for the critical findings, or None."""
    critical = [f for f in report.findings if f.severity is Severity.CRITICAL]
    if not critical:
        return None
    return {
        "event": CRITICAL_EVENT,
        "resource": {
            "prefect.resource.id": f"runbook.service.{report.service}.{report.environment}",
            "prefect.resource.name": report.service,
            "runbook.environment": report.environment,
        },
        "payload": {
            "image": report.image,
            "count": len(critical),
            "findings": [{"tool": f.tool, "rule_id": f.rule_id, "location": f.location,
                          "title": f.title, "fingerprint": f.fingerprint} for f in critical],
        },
    }


def _row(kind: str, name: str, status: str, where: str, detail: str) -> dict[str, str]:
    return {"kind": kind, "name": name, "status": status, "where": where, "detail": detail}
