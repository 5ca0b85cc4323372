"""The scan stage's gates: pure functions from a scan report and the policy to gates.

Every gate explains itself (value, threshold, detail); a warning is a passed gate flagged
``warning`` so it shows in the report without blocking.
"""

from __future__ import annotations

from runbook.models import Finding, Gate, Severity
from runbook.names import GateName
from runbook.policy import ScanSettings, Thresholds
from runbook.scan.coverage import NOT_MEASURED
from runbook.scan.models import ScannerStatus, ScanReport

SECRET_TOOLS = frozenset({"detect-secrets"})
DOCKERFILE_TOOLS = frozenset({"hadolint", "dockerfile-policy"})
CODE_LINT_TOOLS = frozenset({"ruff", "shellcheck"})
DETAIL_ITEMS = 5


def scan_gates(report: ScanReport, policy: ScanSettings, thresholds: Thresholds) -> list[Gate]:
    """All gates of one scan, in a stable order."""
    return [
        _severity_gate(report, policy),
        _secrets_gate(report, policy),
        _dockerfile_gate(report, policy),
        _code_lint_gate(report, policy),
        _availability_gate(report, policy),
        _coverage_gate(report, policy, thresholds),
        _suppressions_gate(report),
        _sbom_gate(report),
    ]


def blocking_severities(policy: ScanSettings, environment: str) -> set[Severity]:
    severities = set(policy.block_severities)
    if environment == "production":
        severities |= set(policy.production_block_severities)
    return severities


def _severity_gate(report: ScanReport, policy: ScanSettings) -> Gate:
    severities = blocking_severities(policy, report.environment)
    blocking = [f for f in report.findings if f.severity in severities]
    worst = sorted(severities, key=lambda s: s.rank)
    return Gate(
        name=GateName.SCAN_SEVERITY, passed=not blocking, value=len(blocking), threshold=0,
        detail=f"findings rated {'/'.join(s.value for s in worst)}: " + _list(blocking),
    )


def _secrets_gate(report: ScanReport, policy: ScanSettings) -> Gate:
    secrets = [f for f in report.findings if f.tool in SECRET_TOOLS]
    return Gate(
        name=GateName.SCAN_SECRETS, passed=not (secrets and policy.secrets_block),
        value=len(secrets), threshold=0, warning=bool(secrets) and not policy.secrets_block,
        detail="secrets in source: " + _list(secrets),
    )


def _dockerfile_gate(report: ScanReport, policy: ScanSettings) -> Gate:
    lint = [f for f in report.findings if f.tool in DOCKERFILE_TOOLS]
    blocking = [f for f in lint if f.severity in policy.lint_block_severities]
    return Gate(
        name=GateName.DOCKERFILE_LINT, passed=not blocking, value=len(blocking), threshold=0,
        warning=bool(lint) and not blocking,
        detail=f"{len(lint)} Dockerfile finding(s), blocking: " + _list(blocking),
    )


def _code_lint_gate(report: ScanReport, policy: ScanSettings) -> Gate:
    lint = [f for f in report.findings if f.tool in CODE_LINT_TOOLS]
    blocking = [f for f in lint if f.severity in policy.lint_block_severities]
    ran = [r.scanner for r in report.results
           if r.scanner in CODE_LINT_TOOLS and r.status is ScannerStatus.OK]
    return Gate(
        name=GateName.CODE_LINT, passed=not blocking, value=len(blocking), threshold=0,
        warning=bool(lint) and not blocking,
        detail=f"{len(lint)} finding(s) of {', '.join(ran) or 'no linter'}, blocking: "
               + _list(blocking),
    )


def _availability_gate(report: ScanReport, policy: ScanSettings) -> Gate:
    missing = [r for r in report.results if r.status is ScannerStatus.UNAVAILABLE]
    closed = report.environment in policy.fail_closed_environments
    names = ", ".join(f"{r.scanner} ({r.detail})" for r in missing) or "none"
    return Gate(
        name=GateName.SCANNERS_AVAILABLE, passed=not (missing and closed), value=len(missing),
        threshold=0, warning=bool(missing) and not closed,
        detail=f"unavailable: {names}; "
               + ("fails closed here" if closed else "a warning here, blocks in "
                  + "/".join(policy.fail_closed_environments)),
    )


def _coverage_gate(report: ScanReport, policy: ScanSettings, thresholds: Thresholds) -> Gate:
    """The runbook requires coverage above the threshold: not measured blocks where
    unavailable scanners fail closed (production) and warns elsewhere, and is never shown
    as a number."""
    pct = report.coverage.line_rate_pct
    if pct is None:
        closed = report.environment in policy.fail_closed_environments
        return Gate(name=GateName.COVERAGE_PCT, passed=not closed, warning=not closed,
                    value=NOT_MEASURED, threshold=thresholds.coverage_min_pct,
                    detail=(report.coverage.detail or NOT_MEASURED)
                    + ("; blocks here" if closed else "; a warning here, blocks in "
                       + "/".join(policy.fail_closed_environments)))
    return Gate(name=GateName.COVERAGE_PCT, passed=pct > thresholds.coverage_min_pct, value=pct,
                threshold=thresholds.coverage_min_pct, detail=report.coverage.detail)


def _suppressions_gate(report: ScanReport) -> Gate:
    expired = report.expired_suppressions
    return Gate(
        name=GateName.SUPPRESSIONS_EXPIRED, passed=True, warning=bool(expired), value=len(expired),
        threshold=0,
        detail=f"{len(report.suppressed)} finding(s) suppressed; expired entries (no longer "
               "suppressing): " + ("; ".join(s.describe() for s in expired) or "none"),
    )


def _sbom_gate(report: ScanReport) -> Gate:
    """Informational: the SBOM's size, where it is stored and what changed since the
    previous release. No SBOM is a warning: the release ships without a package list."""
    sbom = report.sbom
    if sbom is None:
        return Gate(name=GateName.SBOM, passed=True, warning=True, value="none", threshold=None,
                    detail="no SBOM: the image scanner (Trivy) could not make one")
    changes = sbom.diff.describe() if sbom.diff else "not compared with a previous release"
    return Gate(name=GateName.SBOM, passed=True, value=len(sbom.components), threshold=None,
                detail=f"CycloneDX at {sbom.path or 'not stored'}; {changes}")


def critical_findings(report: ScanReport) -> list[Finding]:
    return [f for f in report.findings if f.severity is Severity.CRITICAL]


def _list(findings: list[Finding]) -> str:
    if not findings:
        return "none"
    shown = "; ".join(f"{f.tool} {f.rule_id} {f.location}" for f in findings[:DETAIL_ITEMS])
    more = len(findings) - DETAIL_ITEMS
    return shown + (f" (+{more} more)" if more > 0 else "")
