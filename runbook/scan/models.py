"""Records of one scan: what each scanner said and whether it could say anything."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from runbook.models import Finding
from runbook.scan.errors import ScanOutputError
from runbook.scan.sbom import Sbom

__all__ = [
    "Coverage",
    "ScanOutputError",
    "ScanReport",
    "ScannerResult",
    "ScannerStatus",
    "Suppression",
]


class ScannerStatus(StrEnum):
    OK = "ok"  # ran and reported (possibly nothing)
    UNAVAILABLE = "unavailable"  # could not run here: not installed, service unreachable
    NOT_APPLICABLE = "not_applicable"  # nothing for it to scan (e.g. no dependency manifest)
    NOT_CONFIGURED = "not_configured"  # the service declares nothing for it (coverage)


class ScannerResult(BaseModel):
    scanner: str
    status: ScannerStatus
    findings: list[Finding] = Field(default_factory=list)
    duration_s: float = 0.0
    detail: str = ""


class Suppression(BaseModel):
    """One audited exception from ``.runbook/suppressions.yaml``."""

    fingerprint: str | None = None
    rule_id: str | None = None
    location: str | None = None
    reason: str
    owner: str
    expires: date

    def matches(self, finding: Finding) -> bool:
        if self.fingerprint is not None:
            return self.fingerprint == finding.fingerprint
        return self.rule_id == finding.rule_id and self.location == finding.location

    def describe(self) -> str:
        target = self.fingerprint or f"{self.rule_id} {self.location}"
        return f"{target} (owner {self.owner}, expired {self.expires.isoformat()})"


class Coverage(BaseModel):
    """Line coverage from the test stage's Cobertura report; None pct: not measured (the
    detail says why)."""

    line_rate_pct: float | None = None
    detail: str = ""


class ScanReport(BaseModel):
    """Everything the scan stage learned about one image of one service."""

    service: str
    environment: str
    image: str
    results: list[ScannerResult] = Field(default_factory=list)
    suppressed: list[Finding] = Field(default_factory=list)
    expired_suppressions: list[Suppression] = Field(default_factory=list)
    coverage: Coverage = Field(default_factory=Coverage)
    sbom: Sbom | None = None  # None: no SBOM could be made (Trivy unavailable)
    wall_time_s: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        """Unsuppressed findings of every scanner."""
        return [f for result in self.results for f in result.findings]

    @property
    def scanner_time_s(self) -> float:
        return sum(result.duration_s for result in self.results)
