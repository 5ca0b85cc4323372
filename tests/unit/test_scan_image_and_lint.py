"""Trivy's misconfig and version handling, the SBOM and its diff, ruff and shellcheck
reports: pure parts, on real-format output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.models import Finding, Severity
from runbook.policy import ScanSettings, Thresholds
from runbook.scan import lint, sbom, trivy
from runbook.scan.models import ScannerResult, ScannerStatus, ScanOutputError, ScanReport
from runbook.scan.process import ToolMissing
from runbook.scan.verdict import scan_gates

REPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "scan" / "reports"
RELEASE_1 = (REPORTS / "sbom-release1.cdx.json").read_text()


def test_trivy_failed_misconfiguration_checks_are_findings() -> None:
    findings = trivy.parse((REPORTS / "trivy-misconfig.json").read_text())
    assert [(f.rule_id, f.severity, f.location) for f in findings] == [
        ("AVD-DS-0002", Severity.HIGH, "Dockerfile:0"),
        ("AVD-DS-0026", Severity.LOW, "Dockerfile:0"),
    ]
    assert findings[0].title.startswith("Image user should not be 'root': Specify")


def test_trivy_passed_checks_are_not_findings() -> None:
    report = {"Results": [{"Target": "Dockerfile", "Misconfigurations": [
        {"ID": "DS001", "AVDID": "AVD-DS-0001", "Severity": "MEDIUM", "Status": "PASS"}]}]}
    assert trivy.parse(json.dumps(report)) == []


def test_trivy_version_is_checked() -> None:
    assert trivy.parse_version("Version: 0.59.1\n") == "0.59.1"
    with pytest.raises(ToolMissing, match="older than"):
        trivy.parse_version("Version: 0.40.0")
    with pytest.raises(ToolMissing, match="no version"):
        trivy.parse_version("command not found")


def test_database_errors_are_told_apart_from_other_failures() -> None:
    first_run = ("2026-12-01T14:21:51Z\tFATAL\tFatal error\tinit error: DB error: database "
                 "error: --skip-update cannot be specified on the first run")
    assert trivy.db_error(first_run) == ("init error: DB error: database error: "
                                         "--skip-update cannot be specified on the first run")
    offline = ("FATAL\tFatal error\tinit error: DB error: failed to download vulnerability DB: "
               'Get "https://mirror.gcr.io/v2/": dial tcp: no such host')
    assert "no such host" in str(trivy.db_error(offline))
    assert trivy.db_error("FATAL\tunable to inspect the image (r@sha256:0)") is None


def test_skipped_updates_without_a_database_is_known_up_front(tmp_path: Path) -> None:
    options = trivy.Options(cache_dir=str(tmp_path), skip_db_update=True)
    assert trivy.database_missing(options)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "trivy.db").write_bytes(b"")
    assert not trivy.database_missing(options)
    assert not trivy.database_missing(trivy.Options(cache_dir=str(tmp_path / "none")))


def test_image_command_reads_the_image_by_digest_from_the_given_sources() -> None:
    options = trivy.Options(cache_dir="/mirror", docker_host="unix:///run/d.sock")
    argv = trivy.image_command("trivy", "r/svc@sha256:ab", options, Path("/o.json"))
    assert argv[-1] == "r/svc@sha256:ab"
    assert argv[argv.index("--scanners") + 1] == "secret,misconfig"
    assert argv[argv.index("--image-src") + 1] == "docker,remote"
    assert argv[argv.index("--cache-dir") + 1] == "/mirror"
    vuln = trivy.vuln_command("trivy", Path("/s.json"), trivy.Options(skip_db_update=True),
                              Path("/v.json"))
    assert "--skip-db-update" in vuln and vuln[vuln.index("--scanners") + 1] == "vuln"


def test_cyclonedx_components_with_purl_types() -> None:
    components = sbom.parse_cyclonedx(RELEASE_1)
    assert {(c.name, c.type) for c in components} >= {("python3", "deb"), ("libc6", "deb")}
    python3 = next(c for c in components if c.name == "python3")
    assert python3.version == "3.11.2-1+b1" and "+" in python3.purl  # purl unquoted


@pytest.mark.parametrize("bad", ["", "[]", '{"bomFormat": "SPDX"}'])
def test_not_a_cyclonedx_document_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ScanOutputError, match="^sbom: "):
        sbom.parse_cyclonedx(bad)


def test_sbom_diff_lists_added_removed_and_changed_packages() -> None:
    before = [sbom.Component(name="python3", version="3.11.2", type="deb"),
              sbom.Component(name="curl", version="7.88", type="deb"),
              sbom.Component(name="flask", version="2.0", type="pypi")]
    after = [sbom.Component(name="python3", version="3.11.2", type="deb"),
             sbom.Component(name="python3-coverage", version="6.5.0", type="deb"),
             sbom.Component(name="flask", version="2.3", type="pypi")]
    diff = sbom.diff(before, after, "rev1")
    assert [c.name for c in diff.added] == ["python3-coverage"]
    assert [c.name for c in diff.removed] == ["curl"]
    assert [(u.name, u.previous, u.current) for u in diff.changed] == [("flask", "2.0", "2.3")]
    assert diff.describe().startswith("vs rev1: +1 added, -1 removed, 1 changed")
    assert sbom.diff(before, after, None).describe().startswith("no previous release")


def test_ruff_report_rated_by_code_prefix(tmp_path: Path) -> None:
    report = json.dumps([
        {"code": "F821", "message": "Undefined name `x`", "filename": str(tmp_path / "a.py"),
         "location": {"row": 3, "column": 1}},
        {"code": "F401", "message": "`os` imported but unused",
         "filename": str(tmp_path / "pkg" / "b.py"), "location": {"row": 1, "column": 8}},
        {"code": None, "message": "SyntaxError: Expected ':'", "filename": "c.py",
         "location": {"row": 2, "column": 9}},
        {"code": "E501", "message": "Line too long", "filename": "c.py",
         "location": {"row": 4, "column": 101}},
    ])
    findings = lint.parse_ruff(report, tmp_path, ScanSettings().ruff_severities)
    assert [(f.rule_id, f.severity, f.location) for f in findings] == [
        ("F821", Severity.HIGH, "a.py:3"), ("F401", Severity.MEDIUM, "pkg/b.py:1"),
        ("syntax-error", Severity.HIGH, "c.py:2"), ("E501", Severity.LOW, "c.py:4"),
    ]


def test_shellcheck_levels_map_onto_severities() -> None:
    report = json.dumps({"comments": [
        {"file": "run.sh", "line": 2, "level": "error", "code": 1072, "message": "x"},
        {"file": "run.sh", "line": 3, "level": "warning", "code": 2164, "message": "cd"},
        {"file": "run.sh", "line": 4, "level": "info", "code": 2086, "message": "quote"},
        {"file": "run.sh", "line": 5, "level": "style", "code": 2006, "message": "$()"},
    ]})
    assert [(f.rule_id, f.severity) for f in lint.parse_shellcheck(report)] == [
        ("SC1072", Severity.HIGH), ("SC2164", Severity.MEDIUM), ("SC2086", Severity.LOW),
        ("SC2006", Severity.INFO),
    ]
    with pytest.raises(ScanOutputError, match="^shellcheck: "):
        lint.parse_shellcheck("[]")


def test_shell_scripts_found_by_suffix_and_shebang(tmp_path: Path) -> None:
    (tmp_path / "a.sh").write_text("echo a\n")
    (tmp_path / "entry").write_text("#!/usr/bin/env bash\necho b\n")
    (tmp_path / "tool").write_text("#!/usr/bin/python3\n")
    (tmp_path / ".runbook").mkdir()
    (tmp_path / ".runbook" / "x.sh").write_text("echo c\n")
    assert [p.name for p in lint.shell_scripts(tmp_path)] == ["a.sh", "entry"]


def test_policy_rates_one_rule_differently() -> None:
    found = [Finding(tool="ruff", rule_id="F401", severity=Severity.MEDIUM, title="t",
                     location="a.py:1")]
    rerated = lint.rerate(found, {"ruff:F401": Severity.HIGH})
    assert rerated[0].severity is Severity.HIGH
    assert rerated[0].fingerprint == found[0].fingerprint  # the same finding, rated anew


def _report(*results: ScannerResult, environment: str = "staging") -> ScanReport:
    return ScanReport(service="s", environment=environment, image="r@sha256:0",
                      results=list(results))


def test_high_code_lint_blocks_and_medium_warns() -> None:
    high = Finding(tool="ruff", rule_id="F821", severity=Severity.HIGH, title="t",
                   location="a.py:1")
    medium = Finding(tool="shellcheck", rule_id="SC2164", severity=Severity.MEDIUM, title="t",
                     location="a.sh:1")

    def lint_gate(*findings: Finding) -> tuple[bool, bool]:
        report = _report(ScannerResult(scanner="ruff", status=ScannerStatus.OK,
                                       findings=list(findings)))
        gate = next(g for g in scan_gates(report, ScanSettings(), Thresholds())
                    if g.name == "code_lint")
        return gate.passed, gate.warning

    assert lint_gate(high, medium) == (False, False)
    assert lint_gate(medium) == (True, True)
    assert lint_gate() == (True, False)


def test_vulnerability_database_unavailable_is_not_a_clean_scan() -> None:
    report = _report(
        ScannerResult(scanner="trivy", status=ScannerStatus.OK, detail="0 finding(s)"),
        ScannerResult(scanner="trivy-vuln", status=ScannerStatus.UNAVAILABLE,
                      detail=f"{trivy.DB_UNAVAILABLE}: no such host"),
        environment="production",
    )
    gate = next(g for g in scan_gates(report, ScanSettings(), Thresholds())
                if g.name == "scanners_available")
    assert not gate.passed and trivy.DB_UNAVAILABLE in gate.detail


def test_suppressions_keep_owner_and_expiry_for_every_new_scanner() -> None:
    from datetime import date

    from runbook.scan import suppressions
    from runbook.scan.models import Suppression

    def one(tool: str, rule: str, location: str) -> ScannerResult:
        return ScannerResult(scanner=tool, status=ScannerStatus.OK, findings=[
            Finding(tool=tool, rule_id=rule, severity=Severity.HIGH, title="t",
                    location=location)])

    results = [one("ruff", "F821", "a.py:1"), one("shellcheck", "SC2164", "run.sh:3"),
               one("trivy", "AVD-DS-0002", "Dockerfile:0"), one("osv", "PYSEC-1", "x@1")]
    entries = [Suppression(rule_id=r.findings[0].rule_id, location=r.findings[0].location,
                           reason="accepted", owner="alice@example.com",
                           expires=date(2030, 1, 1)) for r in results[:3]]
    entries.append(Suppression(rule_id="PYSEC-1", location="x@1", reason="old",
                               owner="bob@example.com", expires=date(2020, 1, 1)))
    suppressed, expired = suppressions.apply_to_results(results, entries, date(2026, 12, 1))
    assert sorted(f.tool for f in suppressed) == ["ruff", "shellcheck", "trivy"]
    assert [r.findings for r in results[:3]] == [[], [], []]
    assert [f.rule_id for f in results[3].findings] == ["PYSEC-1"]  # expired: not suppressed
    assert [(s.owner, s.expires.isoformat()) for s in expired] == [("bob@example.com",
                                                                    "2020-01-01")]
