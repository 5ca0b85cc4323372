"""Naming images by their content, so the same source is never built twice."""

from __future__ import annotations

import hashlib
from pathlib import Path

from runbook.service import Service

REVISION_LENGTH = 12
# Never part of an image's identity: VCS metadata, bytecode, runbook's own local records.
_IGNORED_DIRS = {".git", "__pycache__", ".runbook", ".pytest_cache", ".venv", "node_modules"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


def content_revision(service: Service, build_args: dict[str, str]) -> str:
    """A digest of every source file and build argument: equal inputs, equal revision."""
    digest = hashlib.sha256()
    for path in sorted(_source_files(service.directory)):
        relative = path.relative_to(service.directory).as_posix()
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    for key, value in sorted(build_args.items()):
        digest.update(f"arg:{key}={value}\0".encode())
    return digest.hexdigest()[:REVISION_LENGTH]


def _source_files(root: Path) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file()
        and not _IGNORED_DIRS.intersection(path.relative_to(root).parts)
        and path.suffix not in _IGNORED_SUFFIXES
    ]


def repository(registry: str, service_name: str) -> str:
    return f"{registry}/{service_name}"
