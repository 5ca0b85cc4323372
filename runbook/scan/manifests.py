"""Python dependency pins from every manifest a service may have, and from the image SBOM.

``requirements*.txt`` (``name==version`` lines), ``pyproject.toml`` (PEP 621
``[project]`` dependencies and optional dependencies, Poetry's ``[tool.poetry.*]``),
``poetry.lock`` and ``uv.lock`` (``[[package]]`` entries from a registry). A declared
dependency must be pinned somewhere (in its manifest or a lock file beside it): a range
cannot be audited, and an unaudited dependency is never a clean one.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel

from runbook.scan.errors import ScanOutputError
from runbook.scan.sbom import Component

SKIPPED_DIRS = frozenset({".git", ".runbook", ".venv", "venv", "node_modules", "__pycache__"})
LOCK_FILES = ("poetry.lock", "uv.lock")
SBOM_SOURCE = "image SBOM"
_REQUIREMENTS = re.compile(r"^requirements.*\.txt$")
_POETRY_EXACT = re.compile(r"^(==)?\s*(?P<version>\d[\w.+!-]*)$")


class Pin(BaseModel):
    name: str  # canonical
    version: str
    source: str  # the manifest (relative path) or "image SBOM"


class Declared(BaseModel):
    """What the manifests pin, and the declared names nothing pins."""

    pins: list[Pin]
    unpinned: list[str]  # "name (manifest)"
    manifests: list[str]


def manifests(source_dir: Path) -> list[Path]:
    """Every Python manifest under the service directory, sorted."""
    found = []
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in files:
            if _REQUIREMENTS.match(name) or name == "pyproject.toml" or name in LOCK_FILES:
                found.append(Path(root) / name)
    return sorted(found)


def declared(source_dir: Path) -> Declared:
    """Pins of all manifests; a name declared unpinned counts as pinned when any lock file
    or manifest pins it. Raises ScanOutputError on an unreadable manifest."""
    pins: list[Pin] = []
    ranges: list[tuple[str, str]] = []
    paths = manifests(source_dir)
    for path in paths:
        relative = path.relative_to(source_dir).as_posix()
        exact, loose = read_manifest(path, relative)
        pins += exact
        ranges += [(name, relative) for name in loose]
    pinned_names = {p.name for p in pins}
    unpinned = sorted(f"{name} ({where})" for name, where in ranges if name not in pinned_names)
    return Declared(pins=pins, unpinned=unpinned,
                    manifests=[p.relative_to(source_dir).as_posix() for p in paths])


def read_manifest(path: Path, relative: str) -> tuple[list[Pin], list[str]]:
    """(exact pins, names declared without an exact pin) of one manifest."""
    try:
        text = path.read_text()
        if path.name == "pyproject.toml":
            return _pyproject(tomllib.loads(text), relative)
        if path.name in LOCK_FILES:
            return _lock(tomllib.loads(text), relative), []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScanOutputError(f"{relative}: unreadable ({exc})") from exc
    return _requirement_lines(text.splitlines(), relative)


def sbom_pins(components: list[Component]) -> list[Pin]:
    """The Python packages the image's SBOM lists (purl type ``pypi``)."""
    return [Pin(name=canonicalize_name(c.name), version=c.version, source=SBOM_SOURCE)
            for c in components if c.type == "pypi" and c.version]


def _requirement_lines(lines: list[str], relative: str) -> tuple[list[Pin], list[str]]:
    pins, loose = [], []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        pin, name = _requirement(line, relative)
        if pin is not None:
            pins.append(pin)
        else:
            loose.append(name)
    return pins, loose


def _requirement(line: str, relative: str) -> tuple[Pin | None, str]:
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        raise ScanOutputError(f"{relative}: cannot read {line!r}: {exc}") from exc
    name = canonicalize_name(requirement.name)
    exact = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
    if exact and "*" not in exact[0]:
        return Pin(name=name, version=exact[0], source=relative), name
    return None, name


def _pyproject(document: dict[str, Any], relative: str) -> tuple[list[Pin], list[str]]:
    project = document.get("project") or {}
    lines = list(project.get("dependencies") or [])
    for group in (project.get("optional-dependencies") or {}).values():
        lines += list(group)
    pins, loose = _requirement_lines(lines, relative)
    for table in _poetry_tables(document):
        for name, spec in table.items():
            if name.lower() == "python":
                continue
            version = spec.get("version") if isinstance(spec, dict) else spec
            match = _POETRY_EXACT.match(str(version or "").strip())
            if match:
                pins.append(Pin(name=canonicalize_name(name), version=match["version"],
                                source=relative))
            else:
                loose.append(canonicalize_name(name))
    return pins, loose


def _poetry_tables(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    poetry = (document.get("tool") or {}).get("poetry") or {}
    for key in ("dependencies", "dev-dependencies"):
        if isinstance(poetry.get(key), dict):
            yield poetry[key]
    for group in (poetry.get("group") or {}).values():
        if isinstance(group.get("dependencies"), dict):
            yield group["dependencies"]


def _lock(document: dict[str, Any], relative: str) -> list[Pin]:
    """Registry packages of poetry.lock / uv.lock; the project itself (uv's editable or
    virtual root) and git or path sources are not PyPI releases."""
    return [Pin(name=canonicalize_name(str(package["name"])), version=str(package["version"]),
                source=relative)
            for package in document.get("package") or []
            if "name" in package and "version" in package
            and _from_registry(package.get("source") or {})]


def _from_registry(source: dict[str, Any]) -> bool:
    if not source:
        return True  # poetry.lock: from PyPI
    if "registry" in source:
        return True  # uv.lock
    return source.get("type") == "legacy"  # poetry.lock: another package index
