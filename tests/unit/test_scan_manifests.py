"""Pins from every Python manifest and the image SBOM, audited against the offline OSV
directory (real GHSA/PYSEC records in tests/fixtures/scan/osv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.models import Severity
from runbook.scan import deps, manifests
from runbook.scan.models import ScanOutputError
from runbook.scan.sbom import Component

OSV_DB = Path(__file__).resolve().parents[1] / "fixtures" / "scan" / "osv"
PYPROJECT = """\
[project]
name = "svc"
version = "1"
dependencies = ["PyYAML==5.3", "requests>=2"]
[project.optional-dependencies]
web = ["flask==0.5"]
"""
UV_LOCK = """\
version = 1
[[package]]
name = "svc"
version = "1"
source = { editable = "." }
[[package]]
name = "requests"
version = "2.32.3"
source = { registry = "https://pypi.org/simple" }
"""
POETRY = """\
[tool.poetry.dependencies]
python = "^3.11"
tinyparse = "2.0"
flask = { version = "==1.0" }
[tool.poetry.group.dev.dependencies]
pytest = "^8"
"""
POETRY_LOCK = """\
[[package]]
name = "pytest"
version = "8.3.0"
[[package]]
name = "local-lib"
version = "0.1"
[package.source]
type = "directory"
url = "../lib"
"""


def pins(found: manifests.Declared) -> set[tuple[str, str, str]]:
    return {(p.name, p.version, p.source) for p in found.pins}


def test_pyproject_and_uv_lock_together_pin_everything(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "uv.lock").write_text(UV_LOCK)
    found = manifests.declared(tmp_path)
    assert pins(found) == {("pyyaml", "5.3", "pyproject.toml"),
                           ("flask", "0.5", "pyproject.toml"),
                           ("requests", "2.32.3", "uv.lock")}
    assert found.unpinned == []  # requests>=2 is pinned by the lock
    assert found.manifests == ["pyproject.toml", "uv.lock"]


def test_poetry_tables_and_lock(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(POETRY)
    (tmp_path / "poetry.lock").write_text(POETRY_LOCK)
    found = manifests.declared(tmp_path)
    assert pins(found) == {("tinyparse", "2.0", "pyproject.toml"),
                           ("flask", "1.0", "pyproject.toml"),
                           ("pytest", "8.3.0", "poetry.lock")}
    assert found.unpinned == []


def test_a_range_nothing_pins_is_reported(tmp_path: Path) -> None:
    (tmp_path / "requirements-dev.txt").write_text("pytest>=8\nflask==1.0\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "requirements.txt").write_text("pyyaml==5.4\n")
    found = manifests.declared(tmp_path)
    assert found.unpinned == ["pytest (requirements-dev.txt)"]
    assert ("pyyaml", "5.4", "sub/requirements.txt") in pins(found)


def test_unreadable_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("[[package]\n")
    with pytest.raises(ScanOutputError, match="^uv.lock: unreadable"):
        manifests.declared(tmp_path)


def test_vulnerable_pins_of_any_manifest_and_the_sbom_match_osv(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "requirements.txt").write_text("pyyaml==5.3\n")
    image = manifests.sbom_pins([Component(name="Flask", version="0.5", type="pypi"),
                                 Component(name="python3", version="3.11.2", type="deb")])
    found = deps.match_osv(manifests.declared(tmp_path).pins + image,
                                deps.load_osv_database(OSV_DB), Severity.HIGH)
    assert sorted((f.rule_id, f.location, f.severity, f.title.rsplit(" (in ", 1)[1])
                  for f in found) == [
        ("GHSA-8q59-q68h-6hv4", "pyyaml@5.3", Severity.CRITICAL,
         "pyproject.toml, requirements.txt)"),
        ("PYSEC-2019-179", "flask@0.5", Severity.HIGH, "pyproject.toml, image SBOM)"),
    ]


def test_pip_audit_gets_one_line_per_package_or_nothing_on_conflicts() -> None:
    same = [manifests.Pin(name="flask", version="1.0", source=s) for s in ("a", "b")]
    assert deps.requirements_text(same) == "flask==1.0\n"
    conflict = [*same, manifests.Pin(name="Flask", version="2.0", source="c")]
    assert deps.requirements_text(conflict) is None
