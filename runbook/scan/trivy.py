"""Container image: Trivy's JSON report (``trivy image --format json``).

Trivy cannot be installed on every machine: when ``trivy`` is not on PATH the scanner is
`unavailable` (the policy decides what that means per environment).
"""

from __future__ import annotations

import json
from typing import Any

from runbook.models import Finding, Severity
from runbook.scan.models import ScanOutputError

TOOL = "trivy"
_SEVERITY = {"CRITICAL": Severity.CRITICAL, "HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM,
             "LOW": Severity.LOW, "UNKNOWN": Severity.INFO}


def command(program: str, image: str, timeout_s: float) -> list[str]:
    return [program, "image", "--format", "json", "--quiet", "--timeout",
            f"{int(max(timeout_s, 1))}s", image]


def parse(report: str, unrated: Severity = Severity.HIGH) -> list[Finding]:
    """Trivy's JSON (schema version 2: ``{"Results": [...]}``; the legacy top-level list is
    accepted too). Unfixed vulnerabilities have no ``FixedVersion``. Secret findings keep
    rule and place only: Trivy's ``Match`` line is dropped. Raises ScanOutputError."""
    try:
        document = json.loads(report)
        results = (document.get("Results") or []) if isinstance(document, dict) else document
        findings = []
        for result in results:
            target = str(result.get("Target", ""))
            findings += [_vulnerability(v, unrated) for v in result.get("Vulnerabilities") or []]
            findings += [_secret(s, target) for s in result.get("Secrets") or []]
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
