"""The release's SBOM (CycloneDX JSON, written by Trivy): its packages, and what changed
since the previous release (pure)."""

from __future__ import annotations

import json
from urllib.parse import unquote

from pydantic import BaseModel, Field

from runbook.scan.errors import ScanOutputError

SHOWN_CHANGES = 10


class Component(BaseModel):
    """One package of the image: ``type`` is its purl type (``deb``, ``pypi``, ...)."""

    name: str
    version: str
    type: str = ""
    purl: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.type, self.name

    def describe(self) -> str:
        return f"{self.name} {self.version}" + (f" ({self.type})" if self.type else "")


class Upgrade(BaseModel):
    name: str
    type: str
    previous: str
    current: str


class SbomDiff(BaseModel):
    """Packages of this release against the previous release's SBOM."""

    previous_revision: str | None = None
    added: list[Component] = Field(default_factory=list)
    removed: list[Component] = Field(default_factory=list)
    changed: list[Upgrade] = Field(default_factory=list)

    def describe(self) -> str:
        if self.previous_revision is None:
            return "no previous release with an SBOM to compare with"
        parts = [f"vs {self.previous_revision}: +{len(self.added)} added, "
                 f"-{len(self.removed)} removed, {len(self.changed)} changed version"]
        if self.added:
            parts.append("added " + _shown([c.describe() for c in self.added]))
        if self.removed:
            parts.append("removed " + _shown([c.describe() for c in self.removed]))
        if self.changed:
            parts.append("changed " + _shown([f"{u.name} {u.previous} -> {u.current}"
                                              for u in self.changed]))
        return "; ".join(parts)


class Sbom(BaseModel):
    """Where the SBOM is stored and what it lists."""

    path: str | None = None
    components: list[Component] = Field(default_factory=list)
    diff: SbomDiff | None = None

    def names(self) -> set[str]:
        return {c.name for c in self.components}


def parse_cyclonedx(text: str) -> list[Component]:
    """Components of a CycloneDX JSON document (nested ones included), sorted. Raises
    ScanOutputError when it is not one."""
    try:
        document = json.loads(text)
        if document.get("bomFormat") != "CycloneDX":
            raise ScanOutputError("sbom: not a CycloneDX document (bomFormat)")
        found = list(_walk(document.get("components") or []))
    except (json.JSONDecodeError, AttributeError, TypeError, KeyError) as exc:
        raise ScanOutputError(f"sbom: unreadable CycloneDX JSON ({exc!r})") from exc
    return sorted(found, key=lambda c: (c.type, c.name, c.version))


def _walk(components: list[dict[str, object]]) -> list[Component]:
    result = []
    for item in components:
        if item.get("type") in ("library", "application", "framework") and "name" in item:
            purl = str(item.get("purl") or "")
            result.append(Component(name=str(item["name"]), version=str(item.get("version", "")),
                                    type=_purl_type(purl), purl=unquote(purl)))
        nested = item.get("components")
        if isinstance(nested, list):
            result += _walk(nested)
    return result


def _purl_type(purl: str) -> str:
    if not purl.startswith("pkg:"):
        return ""
    return purl[4:].split("/", 1)[0]


def diff(previous: list[Component], current: list[Component],
         previous_revision: str | None) -> SbomDiff:
    """Added, removed and version-changed packages, keyed on (purl type, name) (pure)."""
    if previous_revision is None:
        return SbomDiff()
    before = {c.key: c for c in previous}
    after = {c.key: c for c in current}
    return SbomDiff(
        previous_revision=previous_revision,
        added=[after[k] for k in sorted(after.keys() - before.keys())],
        removed=[before[k] for k in sorted(before.keys() - after.keys())],
        changed=[Upgrade(name=after[k].name, type=after[k].type, previous=before[k].version,
                         current=after[k].version)
                 for k in sorted(after.keys() & before.keys())
                 if before[k].version != after[k].version],
    )


def _shown(items: list[str]) -> str:
    more = len(items) - SHOWN_CHANGES
    return ", ".join(items[:SHOWN_CHANGES]) + (f" (+{more} more)" if more > 0 else "")
