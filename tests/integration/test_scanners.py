"""The real bandit, detect-secrets and hadolint on fixture services with planted problems."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from runbook.policy import ScanSettings, Thresholds
from runbook.scan import render, runner, store
from runbook.scan.models import Coverage, ScannerStatus, ScanReport
from runbook.scan.verdict import scan_gates
from runbook.store.layout import StateLayout

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scan"
PLANTED_SECRET = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key, planted in app.py


def scan(directory: Path, environment: str = "staging") -> ScanReport:
    return runner.scan_service("svc", environment, directory, directory / "Dockerfile",
                               "r/svc@sha256:ab", ScanSettings(), Coverage())


def failed(report: ScanReport) -> list[str]:
    return [g.name for g in scan_gates(report, ScanSettings(), Thresholds()) if not g.passed]


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / "planted", tmp_path / "planted"))


def test_planted_problems_give_exactly_these_findings_and_block(planted: Path) -> None:
    report = scan(planted)
    assert sorted((f.tool, f.rule_id, f.severity.value, f.location)
                  for f in report.findings) == [
        ("bandit", "B404", "low", "app.py:2"),
        ("bandit", "B602", "high", "app.py:8"),
        ("detect-secrets", "aws-access-key", "critical", "app.py:4"),
        ("dockerfile-policy", "RB-DF001", "high", "Dockerfile:2"),
        ("dockerfile-policy", "RB-DF002", "high", "Dockerfile:4"),
    ]
    statuses = {r.scanner: r.status for r in report.results}
    # No image r/svc@sha256:ab exists: the image scanners say so (tests/integration/
    # test_trivy_image.py scans a real one).
    assert statuses == {"bandit": ScannerStatus.OK, "detect-secrets": ScannerStatus.OK,
                        "dockerfile": ScannerStatus.OK, "ruff": ScannerStatus.OK,
                        "shellcheck": ScannerStatus.NOT_APPLICABLE,
                        "dependencies": ScannerStatus.NOT_APPLICABLE,
                        "trivy": ScannerStatus.UNAVAILABLE,
                        "trivy-vuln": ScannerStatus.UNAVAILABLE,
                        "image-dependencies": ScannerStatus.UNAVAILABLE}
    assert failed(report) == ["scan_severity", "scan_secrets", "dockerfile_lint"]


def test_clean_fixture_passes_in_staging_and_fails_closed_in_production() -> None:
    staging = scan(FIXTURES / "clean")
    assert staging.findings == [] and failed(staging) == []
    # The image does not exist, so Trivy cannot scan it: production refuses to release
    # unscanned images, nor ones whose coverage was not measured.
    assert failed(scan(FIXTURES / "clean", "production")) == ["scanners_available",
                                                               "coverage_pct"]


def test_scanners_run_concurrently(planted: Path) -> None:
    report = scan(planted)
    slowest = max(r.duration_s for r in report.results)
    assert report.wall_time_s < report.scanner_time_s
    assert report.wall_time_s >= slowest


def test_planted_secret_value_reaches_no_output(planted: Path, tmp_path: Path) -> None:
    report = scan(planted)
    gates = scan_gates(report, ScanSettings(), Thresholds())
    directory = StateLayout(tmp_path).scan_dir("svc", "sha256:ab")
    findings_path, sarif_path = store.save(report, directory)
    outputs = {
        "findings.json": findings_path.read_text(),
        "scan.sarif": sarif_path.read_text(),
        "table artifact": json.dumps(render.table_rows(report, gates)),
        "event": json.dumps(render.critical_event(report)),
        "gates": json.dumps([g.model_dump() for g in gates]),
    }
    assert PLANTED_SECRET in (planted / "app.py").read_text()  # the plant is really there
    assert [name for name, text in outputs.items() if PLANTED_SECRET in text] == []
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(json.loads(outputs["scan.sarif"]))


def test_bandit_password_literals_are_redacted(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text('password = "hunter2-very-secret"\n')
    (tmp_path / "Dockerfile").write_text("FROM scratch\nUSER 1\n")
    report = scan(tmp_path)
    bandit = [f for f in report.findings if f.tool == "bandit"]
    assert [f.rule_id for f in bandit] == ["B105"]
    assert "hunter2" not in report.model_dump_json()
