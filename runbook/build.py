"""Naming images by their content, so the same source is never built twice."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from runbook.errors import ConfigurationError
from runbook.models import ImageRef
from runbook.service import Service

REVISION_LENGTH = 12
# Never part of an image's identity: VCS metadata, bytecode, runbook's own local records.
_IGNORED_DIRS = {".git", "__pycache__", ".runbook", ".pytest_cache", ".venv", "node_modules"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


def content_revision(service: Service, build_args: dict[str, str],
                     base_ids: Mapping[str, str] | None = None) -> str:
    """A digest of every source file, build argument and resolved base image: equal inputs,
    equal revision.

    Args:
        service: The service whose directory is the build context.
        build_args: Docker build arguments.
        base_ids: Base image name -> the image id (or registry digest) it resolved to when
            the build started. A new base under the same name is a new revision, so the
            base-image update check's rebuild does not hit the old image by content. Empty
            or None: the revision follows the sources and arguments only.
    """
    digest = hashlib.sha256()
    for path in sorted(_source_files(service.directory)):
        relative = path.relative_to(service.directory).as_posix()
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    for key, value in sorted(build_args.items()):
        digest.update(f"arg:{key}={value}\0".encode())
    for name, image_id in sorted((base_ids or {}).items()):
        digest.update(f"base:{name}={image_id}\0".encode())
    return digest.hexdigest()[:REVISION_LENGTH]


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def dockerfile_bases(text: str, build_args: Mapping[str, str]) -> list[str]:
    """The external images a Dockerfile builds ``FROM``, in order, without duplicates.

    ``ARG`` defaults declared before the first ``FROM`` and ``build_args`` are substituted
    (as ``docker build`` does); ``scratch`` and earlier stages (``FROM build``) are not
    images to resolve. An unresolved ``$VAR`` is kept as written: the caller cannot find
    such a name and says so.
    """
    scope: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    seen_from = False
    for keyword, args in _instructions(text):
        if keyword == "ARG" and not seen_from:
            name, _, default = args.partition("=")
            scope[name.strip()] = build_args.get(name.strip(), default.strip().strip('"'))
        elif keyword == "FROM":
            seen_from = True
            words = [w for w in args.split() if not w.startswith("--")]
            if not words:
                continue
            image = _VARIABLE.sub(lambda m: scope.get(m[1] or m[2], m[0]), words[0])
            if image.lower() != "scratch" and image not in stages and image not in bases:
                bases.append(image)
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2])
    return bases


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, comments skipped, continuations joined."""
    result: list[tuple[str, str]] = []
    body = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not body and (not line or line.startswith("#")):
            continue
        body += " " + line.rstrip("\\")
        if line.endswith("\\"):
            continue
        keyword, _, args = body.strip().partition(" ")
        result.append((keyword.upper(), args.strip()))
        body = ""
    return result


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


_PREBUILT = re.compile(r"^(?P<repository>[a-z0-9][a-z0-9._:/-]*)@(?P<digest>sha256:[0-9a-f]{64})$")


def prebuilt_ref(reference: str, registry_host: str) -> ImageRef:
    """``REPO@sha256:DIGEST`` of an image built elsewhere, as the pipeline's ImageRef: its
    revision is the digest's first hex digits (the same length as a content revision).
    The repository must be in the environment's registry (``registry_host``)."""
    match = _PREBUILT.match(reference)
    if match is None:
        raise ConfigurationError(f"--image {reference!r}: expected REPOSITORY@sha256:DIGEST "
                                 "(64 hex digits)")
    repo, digest = match["repository"], match["digest"]
    if repo.split("/", 1)[0] != registry_host or "/" not in repo:
        raise ConfigurationError(f"--image {reference}: not in the environment's registry "
                                 f"{registry_host}")
    revision = digest.removeprefix("sha256:")[:REVISION_LENGTH]
    return ImageRef(repository=repo, tag=revision, digest=digest)
