"""Stored scans (``<state>/scans/<service>/<digest>/findings.json``) read back for review."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from runbook.ops.scan_review import StoredScan
from runbook.scan.models import ScanReport
from runbook.store.layout import StateLayout


def stored_scans(state_dir: Path, service: str) -> list[StoredScan]:
    """Every stored scan of ``service``, timed by when its findings file was written."""
    root = StateLayout(state_dir).scans_of(service)
    scans = []
    for path in sorted(root.glob("*/findings.json")):
        report = ScanReport.model_validate_json(path.read_text())
        scans.append(StoredScan(
            service=service, digest=path.parent.name.replace("-", ":", 1),
            scanned_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
            findings=report.findings))
    return scans


def scanned_services(state_dir: Path) -> list[str]:
    root = StateLayout(state_dir).scans
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
