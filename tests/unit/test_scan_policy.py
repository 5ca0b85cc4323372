"""The scan verdict per environment, suppressions, SARIF and the critical event (pure)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.logging import disable_run_logger
from prefect.testing.fixtures import asserting_events_worker  # noqa: F401  (fixture)

from runbook.errors import ConfigurationError
from runbook.models import Finding, ImageRef, Severity
from runbook.policy import Policy, PolicyOverrides, ScanSettings, Thresholds, effective_policy
from runbook.scan import render, suppressions
from runbook.scan.models import (
    Coverage,
    ScannerResult,
    ScannerStatus,
    ScanReport,
)
from runbook.scan.sarif import to_sarif
from runbook.scan.verdict import scan_gates

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "scan"
                     / "sarif-schema-2.1.0.json").read_text())
TODAY = date(2026, 6, 1)


def finding(severity: Severity, tool: str = "bandit", rule: str = "B1",
            location: str = "app.py:3") -> Finding:
    return Finding(tool=tool, rule_id=rule, severity=severity, title=f"{rule} title",
                   location=location)


def report(env: str, *findings: Finding, unavailable: bool = False,
           coverage: float | None = 90.0) -> ScanReport:
    results = [ScannerResult(scanner="bandit", status=ScannerStatus.OK, findings=list(findings))]
    if unavailable:
        results.append(ScannerResult(scanner="trivy", status=ScannerStatus.UNAVAILABLE,
                                     detail="trivy is not on PATH"))
    return ScanReport(service="svc", environment=env, image="r/svc@sha256:ab", results=results,
                      coverage=Coverage(line_rate_pct=coverage))


def failed_gates(scan: ScanReport, policy: ScanSettings | None = None) -> list[str]:
    gates = scan_gates(scan, policy or ScanSettings(), Thresholds())
    return [g.name for g in gates if not g.passed]


@pytest.mark.parametrize("env", ["staging", "production"])
def test_critical_blocks_everywhere(env: str) -> None:
    assert failed_gates(report(env, finding(Severity.CRITICAL))) == ["scan_severity"]


def test_high_blocks_production_only() -> None:
    assert failed_gates(report("staging", finding(Severity.HIGH))) == []
    assert failed_gates(report("production", finding(Severity.HIGH))) == ["scan_severity"]
    assert failed_gates(report("production", finding(Severity.MEDIUM))) == []


def test_secrets_block_everywhere() -> None:
    secret = finding(Severity.CRITICAL, tool="detect-secrets", rule="aws-access-key")
    assert failed_gates(report("staging", secret)) == ["scan_severity", "scan_secrets"]


def test_unavailable_scanner_fails_closed_in_production_and_warns_in_staging() -> None:
    staging = scan_gates(report("staging", unavailable=True), ScanSettings(), Thresholds())
    gate = next(g for g in staging if g.name == "scanners_available")
    assert gate.passed and gate.warning and "trivy" in gate.detail
    assert failed_gates(report("production", unavailable=True)) == ["scanners_available"]


def test_coverage_below_threshold_blocks_and_not_measured_warns_in_staging_only() -> None:
    assert failed_gates(report("staging", coverage=79.9)) == ["coverage_pct"]
    gates = scan_gates(report("staging", coverage=None), ScanSettings(), Thresholds())
    gate = next(g for g in gates if g.name == "coverage_pct")
    assert gate.passed and gate.warning and gate.value == "not measured"
    assert failed_gates(report("production", coverage=None)) == ["coverage_pct"]


def test_scan_policy_is_overridable_per_service_and_environment() -> None:
    relaxed = effective_policy(PolicyOverrides(scan={"fail_closed_environments": []}))
    assert failed_gates(report("production", unavailable=True), relaxed.scan) == []
    assert Policy().scan.production_block_severities == [Severity.CRITICAL, Severity.HIGH]
    with pytest.raises(ValueError, match="severity"):
        effective_policy(PolicyOverrides(scan={"unrated_vulnerability_severity": "bad"}))


def test_dockerfile_high_findings_block_in_staging() -> None:
    lint = finding(Severity.HIGH, tool="dockerfile-policy", rule="RB-DF002",
                   location="Dockerfile:4")
    assert failed_gates(report("staging", lint)) == ["dockerfile_lint"]


def test_future_expiry_suppresses_and_past_expiry_is_reported(tmp_path: Path) -> None:
    shell, key = finding(Severity.HIGH, rule="B602", location="app.py:8"), \
        finding(Severity.CRITICAL, tool="detect-secrets", rule="aws-access-key")
    (tmp_path / ".runbook").mkdir()
    (tmp_path / ".runbook" / "suppressions.yaml").write_text(
        "suppressions:\n"
        f"  - fingerprint: {key.fingerprint}\n    reason: revoked test key\n"
        "    owner: sec@example.com\n    expires: 2026-12-31\n"
        "  - rule_id: B602\n    location: app.py:8\n    reason: fixed soon\n"
        "    owner: dev@example.com\n    expires: 2026-05-31\n"
    )
    entries = suppressions.load(tmp_path)
    kept, suppressed, expired = suppressions.apply([shell, key], entries, TODAY)
    assert kept == [shell] and suppressed == [key]
    assert [(e.rule_id, e.owner) for e in expired] == [("B602", "dev@example.com")]
    scan = report("production", *kept)
    scan.suppressed, scan.expired_suppressions = suppressed, expired
    gates = {g.name: g for g in scan_gates(scan, ScanSettings(), Thresholds())}
    assert not gates["scan_severity"].passed  # the expired entry no longer hides B602
    assert gates["scan_secrets"].passed
    assert gates["suppressions_expired"].warning and "dev@example.com" in \
        gates["suppressions_expired"].detail


def test_suppression_without_target_is_rejected(tmp_path: Path) -> None:
    (tmp_path / ".runbook").mkdir()
    (tmp_path / ".runbook" / "suppressions.yaml").write_text(
        "suppressions:\n  - rule_id: B602\n    reason: r\n    owner: o\n    expires: 2030-01-01\n")
    with pytest.raises(ConfigurationError, match="rule_id' and 'location"):
        suppressions.load(tmp_path)


def test_fingerprint_is_stable_and_distinguishes_findings() -> None:
    assert finding(Severity.LOW).fingerprint == finding(Severity.LOW).fingerprint
    assert finding(Severity.LOW).fingerprint != finding(Severity.LOW, location="a:4").fingerprint


def test_sarif_validates_against_the_2_1_0_schema() -> None:
    scan = report("staging", finding(Severity.CRITICAL),
                  finding(Severity.LOW, tool="trivy", rule="CVE-1", location="libc6@2.36"),
                  finding(Severity.INFO, rule="B9", location="app.py:0"))
    scan.suppressed = [finding(Severity.MEDIUM, rule="B3")]
    log = to_sarif(scan)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert {run["tool"]["driver"]["name"] for run in log["runs"]} == {"bandit", "trivy"}
    bandit_run = next(r for r in log["runs"] if r["tool"]["driver"]["name"] == "bandit")
    assert [r["level"] for r in bandit_run["results"]] == ["error", "note", "warning"]
    assert "suppressions" in bandit_run["results"][-1]


def test_sarif_schema_rejects_a_broken_log() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SCHEMA).validate({"version": "2.1.0", "runs": [{}]})


def test_critical_finding_emits_the_structured_event(
    asserting_events_worker: EventsWorker,  # noqa: F811
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runbook.scan import runner
    from runbook.settings import StackSettings
    from tasks.scan import scan_release

    monkeypatch.setattr(runner, "scan_service",
                        lambda *a, **k: report("staging", finding(Severity.CRITICAL)))
    service = _service(tmp_path)
    image = ImageRef(repository="r/svc", tag="t", digest="sha256:ab")
    with disable_run_logger():
        scan_release.fn(service, "staging", image, ScanSettings(), Coverage(),
                        StackSettings(state_dir=tmp_path / "state"))
    asserting_events_worker.drain()
    assert isinstance(asserting_events_worker._client, AssertingEventsClient)
    events = [e for e in asserting_events_worker._client.events
              if e.event == render.CRITICAL_EVENT]
    assert len(events) == 1
    assert events[0].resource.id == "runbook.service.svc.staging"
    assert events[0].payload["findings"][0]["rule_id"] == "B1"
    assert (tmp_path / "state" / "scans" / "svc" / "sha256-ab" / "findings.json").is_file()


def test_no_event_without_critical_findings() -> None:
    assert render.critical_event(report("production", finding(Severity.HIGH))) is None


def _service(directory: Path):  # type: ignore[no-untyped-def]
    from runbook.service import load_service

    (directory / "service.yaml").write_text("name: svc\nport: 80\n")
    (directory / "Dockerfile").write_text("FROM scratch\n")
    return load_service(directory)
