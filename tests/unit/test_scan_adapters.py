"""Scanner adapters on real-format reports: every severity, unfixed, empty, malformed."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.models import Severity
from runbook.scan import coverage, deps, manifests, trivy
from runbook.scan.models import ScanOutputError

REPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "scan" / "reports"
OSV_DB = REPORTS.parent / "osv"


def read(name: str) -> str:
    return (REPORTS / name).read_text()


def test_trivy_maps_every_severity_and_keeps_unfixed_without_fix() -> None:
    findings = trivy.parse(read("trivy-image.json"))
    summary = [(f.rule_id, f.severity, f.location, f.fixed_version) for f in findings]
    assert summary == [
        ("CVE-2024-45491", Severity.CRITICAL, "libexpat1@2.5.0-1", "2.5.0-1+deb12u1"),
        ("CVE-2023-4911", Severity.HIGH, "libc6@2.36-9", "2.36-9+deb12u3"),
        ("CVE-2024-2961", Severity.MEDIUM, "libc6@2.36-9", None),
        ("CVE-2011-3374", Severity.LOW, "apt@2.6.1", None),
        ("TEMP-0841856-B18BAF", Severity.INFO, "bash@5.2.15-2+b2", None),
        ("aws-access-key-id", Severity.CRITICAL, "/app/settings.py:3", None),
    ]
    assert all(f.tool == "trivy" for f in findings)
    assert "*****" not in "".join(f.model_dump_json() for f in findings)  # Match dropped


def test_trivy_empty_results() -> None:
    assert trivy.parse(read("trivy-empty.json")) == []
    assert trivy.parse('{"SchemaVersion": 2, "Results": null}') == []


@pytest.mark.parametrize("bad", ["", "not json", '{"Results": [{"Vulnerabilities": [{}]}]}',
                                 '{"Results": 5}'])
def test_trivy_malformed_input_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ScanOutputError, match="^trivy: unreadable JSON report"):
        trivy.parse(bad)


def test_pip_audit_findings_carry_fix_and_unrated_severity() -> None:
    findings = deps.parse_pip_audit(read("pip-audit.json"), Severity.HIGH)
    assert [(f.rule_id, f.location, f.fixed_version, f.severity) for f in findings] == [
        ("PYSEC-2019-179", "flask@0.5", "1.0", Severity.HIGH),
        ("PYSEC-2018-66", "flask@0.5", "0.12.3", Severity.HIGH),
        ("GHSA-8q59-q68h-6hv4", "pyyaml@5.3", None, Severity.HIGH),  # unfixed
    ]
    assert "CVE-2019-1010083" in findings[0].title


def test_pip_audit_empty_and_legacy_list_form() -> None:
    assert deps.parse_pip_audit(read("pip-audit-empty.json"), Severity.HIGH) == []
    legacy = '[{"name": "flask", "version": "0.5", "vulns": [{"id": "X-1", "fix_versions": []}]}]'
    assert [f.rule_id for f in deps.parse_pip_audit(legacy, Severity.LOW)] == ["X-1"]


def test_pip_audit_skipped_dependency_is_not_a_clean_result() -> None:
    with pytest.raises(deps.ServiceUnreachable, match="could not audit 1 dependency"):
        deps.parse_pip_audit(read("pip-audit-skipped.json"), Severity.HIGH)


@pytest.mark.parametrize("bad", ["", "{", '{"dependencies": [{"vulns": [{}]}]}'])
def test_pip_audit_malformed_input_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ScanOutputError, match="^pip-audit: unreadable JSON report"):
        deps.parse_pip_audit(bad, Severity.HIGH)


def test_osv_database_matches_pinned_versions_by_range_and_list(tmp_path: Path) -> None:
    manifest = tmp_path / "requirements.txt"
    manifest.write_text("flask==0.5\nPyYAML==5.3  # old\ntinyparse==2.0\nrequests==2.32.3\n")
    findings = deps.match_osv(manifests.declared(tmp_path).pins,
                                   deps.load_osv_database(OSV_DB), Severity.HIGH)
    assert sorted((f.rule_id, f.location, f.severity, f.fixed_version) for f in findings) == [
        ("GHSA-2xxx-unfx-0001", "tinyparse@2.0", Severity.MEDIUM, None),
        ("GHSA-8q59-q68h-6hv4", "pyyaml@5.3", Severity.CRITICAL, "5.4"),
        ("PYSEC-2019-179", "flask@0.5", Severity.HIGH, "1.0"),  # unrated -> policy default
    ]


def test_osv_fixed_version_is_not_affected(tmp_path: Path) -> None:
    manifest = tmp_path / "requirements.txt"
    manifest.write_text("flask==1.0\npyyaml==5.4\ntinyparse==0.9\n")
    records = deps.load_osv_database(OSV_DB)
    assert deps.match_osv(manifests.declared(tmp_path).pins, records, Severity.HIGH) == []


def test_osv_malformed_record_and_unpinned_requirement_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ScanOutputError, match=r"osv: bad.json is not a JSON OSV record"):
        deps.load_osv_database(tmp_path)
    manifest = tmp_path / "requirements.txt"
    manifest.write_text("flask>=1\n")
    assert manifests.declared(tmp_path).unpinned == ["flask (requirements.txt)"]


def test_cobertura_line_rate_and_malformed_reports() -> None:
    report = coverage.parse(read("coverage.xml"))
    assert report.line_rate_pct == 85.0 and report.detail == "102/120 lines covered"
    for bad, message in [("<coverage", "not valid XML"), ("<report/>", "not a Cobertura"),
                         ('<coverage line-rate="1.5"/>', "outside 0..1")]:
        with pytest.raises(ScanOutputError, match=message):
            coverage.parse(bad)
