"""Weekly security scan review: this week's findings against last week's, per service (pure).

Ages come from the first stored scan that had the finding, so a finding carried from image
to image keeps its age; the SLA clock does not restart with a rebuild.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel

from runbook.models import Finding, Severity
from runbook.ops.policy import ScanSla
from runbook.scan.models import Suppression


class StoredScan(BaseModel):
    """Findings of one stored scan of one image (``<state>/scans/<service>/<digest>/``)."""

    service: str
    digest: str
    scanned_at: datetime
    findings: list[Finding]


class OpenFinding(BaseModel):
    finding: Finding
    first_seen: datetime
    age_days: int
    sla_days: int | None
    breached: bool


class ScanReview(BaseModel):
    service: str
    current: str | None
    """Digest of this week's scan; None: no scan this week (reported, nothing compared)."""
    previous: str | None
    new: list[Finding]
    resolved: list[Finding]
    still_open: list[OpenFinding]
    expiring_suppressions: list[Suppression]

    @property
    def sla_breaches(self) -> list[OpenFinding]:
        return [f for f in self.still_open if f.breached]


def sla_days(severity: Severity, sla: ScanSla) -> int | None:
    return {Severity.CRITICAL: sla.critical_days, Severity.HIGH: sla.high_days,
            Severity.MEDIUM: sla.medium_days, Severity.LOW: sla.low_days}.get(severity)


def review(service: str, scans: list[StoredScan], suppressions: list[Suppression],
           now: datetime, sla: ScanSla) -> ScanReview:
    """Compare the latest scan of this week with the latest one before it."""
    ordered = sorted((s for s in scans if s.service == service), key=lambda s: s.scanned_at)
    week_start = now - timedelta(days=sla.week_days)
    this_week = [s for s in ordered if s.scanned_at >= week_start]
    before = [s for s in ordered if s.scanned_at < week_start]
    current = this_week[-1] if this_week else None
    previous = before[-1] if before else None
    now_findings = _by_fingerprint(current.findings if current else [])
    then_findings = _by_fingerprint(previous.findings if previous else [])
    first_seen = _first_seen(ordered)
    return ScanReview(
        service=service,
        current=current.digest if current else None,
        previous=previous.digest if previous else None,
        new=[f for k, f in now_findings.items() if k not in then_findings],
        resolved=[f for k, f in then_findings.items() if k not in now_findings]
        if current else [],
        still_open=[_aged(f, first_seen[k], now, sla) for k, f in now_findings.items()
                    if k in then_findings],
        expiring_suppressions=expiring(suppressions, now.date(), sla.suppression_warning_days),
    )


def expiring(suppressions: list[Suppression], today: date, within_days: int
             ) -> list[Suppression]:
    """Suppressions still active that expire within ``within_days`` of ``today``."""
    horizon = today + timedelta(days=within_days)
    return [s for s in suppressions if today <= s.expires <= horizon]


def _aged(finding: Finding, first_seen: datetime, now: datetime, sla: ScanSla) -> OpenFinding:
    age = (now - first_seen).days
    limit = sla_days(finding.severity, sla)
    return OpenFinding(finding=finding, first_seen=first_seen, age_days=age, sla_days=limit,
                       breached=limit is not None and age > limit)


def _by_fingerprint(findings: list[Finding]) -> dict[str, Finding]:
    return {f.fingerprint: f for f in findings}


def _first_seen(ordered: list[StoredScan]) -> dict[str, datetime]:
    seen: dict[str, datetime] = {}
    for scan in ordered:
        for finding in scan.findings:
            seen.setdefault(finding.fingerprint, scan.scanned_at)
    return seen
