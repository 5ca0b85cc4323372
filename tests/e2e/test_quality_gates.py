"""Quality gates that always measure something, on the sample service: Trivy (secrets and
misconfigurations; the vulnerability part says it has no database), an SBOM that lists
python3 and is compared with the previous release, measured coverage, ruff; a high lint
finding, a vulnerable pin in pyproject.toml and a failing test each block, named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from runbook.models import Outcome, RunReport
from runbook.scan import trivy
from runbook.scan.models import ScannerStatus, ScanReport
from runbook.settings import StackSettings
from runbook.store.layout import StateLayout
from runbook_cli.exit_codes import ExitCode
from tests.conftest import FAST_POLICY
from tests.delivery import deliver

pytestmark = pytest.mark.stack
OSV_DB = Path(__file__).resolve().parents[1] / "fixtures" / "scan" / "osv"


def stored_scan(report: RunReport, settings: StackSettings) -> ScanReport:
    digest = str(report.image).rsplit("@", 1)[1]
    directory = StateLayout(settings.state_dir).scan_dir(report.service, digest)
    return ScanReport.model_validate_json((directory / "findings.json").read_text())


def sbom_artifact(key: str) -> str:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert artifacts, f"no artifact {key}"
    return json.dumps([a.data for a in artifacts])


def failed_gates(report: RunReport) -> set[str]:
    return {g.name for g in report.gates if not g.passed}


def test_release_is_scanned_measured_and_a_high_lint_finding_blocks_the_next(
        stack_settings: StackSettings, sample_service: Callable[..., Path],
        tmp_path: Path) -> None:
    service = sample_service()
    good, code = deliver(service, tmp_path, "VERSION=1")
    assert (good.outcome, code) == (Outcome.RELEASED, 0), good.reason
    scan = stored_scan(good, stack_settings)
    results = {r.scanner: r for r in scan.results}
    assert results["trivy"].status is ScannerStatus.OK, results["trivy"].detail
    assert "secret, misconfig" in results["trivy"].detail
    assert results["trivy-vuln"].status is ScannerStatus.UNAVAILABLE
    assert results["trivy-vuln"].detail.startswith(trivy.DB_UNAVAILABLE)
    assert results["ruff"].status is ScannerStatus.OK
    assert scan.sbom is not None and "python3" in scan.sbom.names()
    gates = {g.name: g for g in good.gates}
    coverage = gates["coverage_pct"]
    assert isinstance(coverage.value, float) and coverage.value > 80 and coverage.passed
    assert not coverage.warning and "lines covered" in coverage.detail
    assert str(scan.sbom.path) in gates["sbom"].detail  # the report links the SBOM
    assert "python3" in sbom_artifact(f"sbom-{good.service}-staging")

    (service / "helpers.py").write_text("def answer():\n    return undefined_name\n")
    bad, code = deliver(service, tmp_path, "VERSION=2")
    assert (bad.outcome, code) == (Outcome.BLOCKED, ExitCode.BLOCKED)
    assert failed_gates(bad) == {"code_lint"}
    assert "ruff F821 helpers.py:2" in {g.name: g for g in bad.gates}["code_lint"].detail
    # Same packages as the release it would have replaced: the diff says so.
    assert f"vs {good.revision}: +0 added, -0 removed" in {
        g.name: g for g in bad.gates}["sbom"].detail


def test_a_vulnerable_pin_in_pyproject_blocks(
        stack_settings: StackSettings, sample_service: Callable[..., Path],
        tmp_path: Path) -> None:
    service = sample_service(policy={**FAST_POLICY, "scan": {"osv_database_dir": str(OSV_DB)}})
    (service / "pyproject.toml").write_text(
        '[project]\nname = "agent-api"\nversion = "1"\ndependencies = ["PyYAML==5.3"]\n')
    report, code = deliver(service, tmp_path, "VERSION=1")
    assert (report.outcome, code) == (Outcome.BLOCKED, ExitCode.BLOCKED)
    assert failed_gates(report) == {"scan_severity"}
    findings = [f for r in stored_scan(report, stack_settings).results for f in r.findings
                if r.scanner == "dependencies"]
    assert [(f.rule_id, f.location) for f in findings] == [("GHSA-8q59-q68h-6hv4",
                                                            "pyyaml@5.3")]
    assert findings[0].title.endswith("(in pyproject.toml)")


def test_a_failing_test_is_named_in_the_report(
        stack_settings: StackSettings, sample_service: Callable[..., Path],
        tmp_path: Path) -> None:
    service = sample_service()
    (service / "tests" / "test_regression.py").write_text(
        "import unittest\n\n\nclass Regression(unittest.TestCase):\n"
        "    def test_answer_is_42(self):\n        self.assertEqual(41, 42)\n")
    report, code = deliver(service, tmp_path, "VERSION=1")
    assert (report.outcome, code) == (Outcome.BLOCKED, ExitCode.BLOCKED)
    assert failed_gates(report) == {"tests"}
    name = "test_regression.Regression.test_answer_is_42"
    assert name in {s.name: s for s in report.stages}["test"].detail
    tests_gate = {g.name: g for g in report.gates}["tests"]
    assert name in tests_gate.detail and "AssertionError: 41 != 42" in tests_gate.detail
