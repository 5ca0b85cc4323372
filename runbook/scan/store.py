"""Findings JSON, SARIF and the SBOM stored per service and image digest, for the weekly
review and the next release's package diff (``StateLayout.scan_dir``; runbook.store.layout).

```
<state>/scans/<service>/<sha256-hex>/
    findings.json    the ScanReport
    scan.sarif       SARIF 2.1.0
    sbom.cdx.json    CycloneDX JSON of the image (written by Trivy)
    image.json       which image and revision this directory is about
```
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from runbook.scan.models import ScanReport
from runbook.scan.sarif import to_sarif
from runbook.scan.sbom import Component, parse_cyclonedx
from runbook.scan.trivy import SBOM_FILE
from runbook.store.layout import StateLayout

IMAGE_FILE = "image.json"


class StoredImage(BaseModel):
    image: str
    revision: str


def save(report: ScanReport, directory: Path, revision: str | None = None
         ) -> tuple[Path, Path]:
    """Write ``findings.json``, ``scan.sarif`` (and ``image.json`` when the revision is
    known) atomically; the first two paths. The SBOM is already there: Trivy wrote it."""
    directory.mkdir(parents=True, exist_ok=True)
    findings = _write(directory / "findings.json", report.model_dump_json(indent=2))
    sarif = _write(directory / "scan.sarif", json.dumps(to_sarif(report), indent=2))
    if revision is not None:
        _write(directory / IMAGE_FILE,
               StoredImage(image=report.image, revision=revision).model_dump_json())
    return findings, sarif


def sbom_of_revision(state_dir: Path, service: str, revision: str) -> list[Component] | None:
    """The stored SBOM's components of the image built as ``revision``, or None."""
    for image_file in sorted(StateLayout(state_dir).scans_of(service).glob(f"*/{IMAGE_FILE}")):
        try:
            stored = StoredImage.model_validate_json(image_file.read_text())
        except (OSError, ValidationError):
            continue
        sbom = image_file.parent / SBOM_FILE
        if stored.revision == revision and sbom.is_file():
            return parse_cyclonedx(sbom.read_text())
    return None


def _write(path: Path, text: str) -> Path:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text + "\n")
    temporary.replace(path)
    return path
