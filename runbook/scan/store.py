"""Findings JSON and SARIF stored per service and image digest, for the weekly review."""

from __future__ import annotations

import json
from pathlib import Path

from runbook.scan.models import ScanReport
from runbook.scan.sarif import to_sarif


def scan_dir(state_dir: Path, service: str, digest: str) -> Path:
    """``<state>/scans/<service>/<sha256-hex>/``: one directory per image."""
    return state_dir / "scans" / service / digest.replace(":", "-")


def save(report: ScanReport, directory: Path) -> tuple[Path, Path]:
    """Write ``findings.json`` and ``scan.sarif`` atomically; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    findings = _write(directory / "findings.json", report.model_dump_json(indent=2))
    sarif = _write(directory / "scan.sarif", json.dumps(to_sarif(report), indent=2))
    return findings, sarif


def _write(path: Path, text: str) -> Path:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text + "\n")
    temporary.replace(path)
    return path
