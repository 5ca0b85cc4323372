"""Secrets: detect-secrets on the service source.

Its baseline JSON carries the secret's type, file, line and a SHA-1 of the value, never the
value; findings take type, file and line only, so no secret value can travel further.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from runbook.models import Finding, Severity
from runbook.scan.models import ScanOutputError
from runbook.scan.process import find_program, run_tool

TOOL = "detect-secrets"
EXCLUDED_FILES = r"(^|/)\.runbook/"


def command(source_dir: Path) -> list[str]:
    # --all-files: a service directory need not be a git checkout.
    return [find_program("detect-secrets"), "scan", "--all-files",
            "--exclude-files", EXCLUDED_FILES, "."]


def scan(source_dir: Path, timeout_s: float) -> list[Finding]:
    """Run detect-secrets on a directory. Raises ToolMissing, ScanOutputError."""
    _, stdout, stderr = run_tool(command(source_dir), timeout_s, cwd=source_dir)
    return parse(stdout, stderr)


def parse(report: str, stderr: str = "") -> list[Finding]:
    """detect-secrets' baseline JSON as findings: one per secret, always critical."""
    try:
        results: dict[str, list[dict[str, Any]]] = json.loads(report)["results"]
        return [_finding(item) for entries in results.values() for item in entries]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        # Never echo the report itself: it is the one place a value could be.
        raise ScanOutputError(
            f"detect-secrets: unreadable report ({type(exc).__name__}); "
            f"stderr: {stderr.strip()[:200]}"
        ) from exc


def _finding(item: dict[str, Any]) -> Finding:
    kind = str(item["type"])
    location = f"{item['filename']}:{item['line_number']}"
    # Keyed on the secret's hash, not its line: moving the line keeps the fingerprint.
    key = "\x1f".join((TOOL, kind, str(item["filename"]), str(item["hashed_secret"])))
    return Finding(
        tool=TOOL,
        rule_id=kind.replace(" ", "-").lower(),
        severity=Severity.CRITICAL,
        title=f"{kind} in source (value redacted)",
        location=location,
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:32],
    )
