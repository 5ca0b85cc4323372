"""SAST: bandit's JSON report on the service source turned into findings.

Bandit's report quotes source lines (``code``) and, for its hardcoded-password tests, the
string itself in ``issue_text``: neither may reach a finding, so the code is dropped and
quoted literals are redacted here, at the adapter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from runbook.models import Finding, Severity
from runbook.scan.models import ScanOutputError
from runbook.scan.process import find_program, run_tool

TOOL = "bandit"
_SEVERITY = {"HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}
_QUOTED = re.compile(r"""(['"]).*?\1""")
EXCLUDED_DIRS = ("tests", ".runbook")


def command(source_dir: Path) -> list[str]:
    """Recursive scan, JSON on stdout; the service's own tests are not shipped code."""
    excluded = ",".join(str(source_dir / name) for name in EXCLUDED_DIRS)
    return [find_program("bandit"), "-r", "-q", "-f", "json", "-x", excluded, str(source_dir)]


def scan(source_dir: Path, timeout_s: float) -> list[Finding]:
    """Run bandit on a directory. Raises ToolMissing, ScanOutputError."""
    _, stdout, stderr = run_tool(command(source_dir), timeout_s)
    return parse(stdout, source_dir, stderr)


def parse(report: str, source_dir: Path, stderr: str = "") -> list[Finding]:
    """Bandit's ``-f json`` output as findings, locations relative to the source."""
    try:
        document = json.loads(report)
        results: list[dict[str, Any]] = document["results"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ScanOutputError(
            f"bandit: unreadable JSON report ({exc}); stderr: {stderr.strip()[:200]}"
        ) from exc
    return [_finding(item, source_dir) for item in results]


def _finding(item: dict[str, Any], source_dir: Path) -> Finding:
    path = Path(str(item["filename"]))
    if path.is_absolute() and path.is_relative_to(source_dir):
        path = path.relative_to(source_dir)
    relative = path.as_posix().removeprefix("./")
    return Finding(
        tool=TOOL,
        rule_id=str(item["test_id"]),
        severity=_SEVERITY.get(str(item.get("issue_severity", "")).upper(), Severity.INFO),
        title=_QUOTED.sub("'<redacted>'", str(item.get("issue_text", ""))),
        location=f"{relative}:{item.get('line_number', 0)}",
    )
