"""SARIF 2.1.0 (what GitHub code scanning ingests): one run per tool."""

from __future__ import annotations

import re
from typing import Any

from runbook.models import Finding, Severity
from runbook.scan.models import ScanReport

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.INFO: "note"}
# GitHub ranks security results by this property (CVSS-like score, as a string).
_SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                      Severity.LOW: "2.0", Severity.INFO: "0.0"}
_FILE_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")


def to_sarif(report: ScanReport) -> dict[str, Any]:
    """The report's unsuppressed and suppressed findings as a SARIF log (suppressed ones
    carry a ``suppressions`` entry, as SARIF consumers expect)."""
    by_tool: dict[str, list[tuple[Finding, bool]]] = {}
    for result in report.results:
        by_tool.setdefault(result.scanner, [])
        for finding in result.findings:
            by_tool.setdefault(finding.tool, []).append((finding, False))
    for finding in report.suppressed:
        by_tool.setdefault(finding.tool, []).append((finding, True))
    return {"$schema": SCHEMA, "version": "2.1.0",
            "runs": [_run(tool, items) for tool, items in by_tool.items()]}


def _run(tool: str, items: list[tuple[Finding, bool]]) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    for finding, _ in items:
        rules.setdefault(finding.rule_id, {
            "id": finding.rule_id,
            "shortDescription": {"text": finding.title or finding.rule_id},
            "properties": {"security-severity": _SECURITY_SEVERITY[finding.severity]},
        })
    return {
        "tool": {"driver": {"name": tool, "informationUri": "https://example.invalid/runbook",
                            "rules": list(rules.values())}},
        "results": [_result(f, suppressed) for f, suppressed in items],
    }


def _result(finding: Finding, suppressed: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "level": _LEVEL[finding.severity],
        "message": {"text": _message(finding)},
        "locations": [_location(finding.location)],
        "partialFingerprints": {"runbookFingerprint/v1": finding.fingerprint},
        "properties": {"severity": finding.severity.value},
    }
    if suppressed:
        result["suppressions"] = [{"kind": "external", "status": "accepted",
                                   "justification": "runbook suppressions.yaml"}]
    return result


def _message(finding: Finding) -> str:
    fix = f" (fixed in {finding.fixed_version})" if finding.fixed_version else ""
    return f"{finding.title}{fix}"


def _location(location: str) -> dict[str, Any]:
    match = _FILE_LINE.match(location)
    if match and "@" not in location:
        return {"physicalLocation": {
            "artifactLocation": {"uri": match["path"]},
            "region": {"startLine": max(int(match["line"]), 1)},
        }}
    # package@version: a dependency, not a place in a file.
    return {"logicalLocations": [{"fullyQualifiedName": location, "kind": "module"}]}
