"""Registry cleanup plan (pure): which manifests of a repository to delete.

Deletion in the Registry API is by manifest digest and removes every tag pointing at it, so
the plan works on digests: a digest goes only when none of its tags is kept.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class TagInfo(BaseModel):
    tag: str
    digest: str
    created: datetime
    blobs: dict[str, int]
    """Digest -> size of every blob the manifest references (config and layers)."""


class CleanupPlan(BaseModel):
    repository: str
    keep: list[str]
    """Tags kept: the newest ``keep_last`` and every protected revision."""
    delete_digests: list[str]
    delete_tags: list[str]
    bytes_freed: int
    """Size of the blobs only deleted manifests reference (reclaimed by the registry's
    garbage collection)."""


def plan_cleanup(repository: str, tags: list[TagInfo], protected: set[str], keep_last: int
                 ) -> CleanupPlan:
    """Keep the newest ``keep_last`` tags and every tag in ``protected``; delete the rest."""
    newest_first = sorted(tags, key=lambda t: (t.created, t.tag), reverse=True)
    kept_tags = {t.tag for t in newest_first[:keep_last]} | (protected & {t.tag for t in tags})
    kept_digests = {t.digest for t in tags if t.tag in kept_tags}
    doomed = [t for t in newest_first if t.digest not in kept_digests]
    doomed_digests = sorted({t.digest for t in doomed})
    kept_blobs = {b for t in tags if t.digest in kept_digests for b in t.blobs}
    doomed_blobs = {b: size for t in doomed for b, size in t.blobs.items() if b not in kept_blobs}
    return CleanupPlan(
        repository=repository,
        keep=sorted(t.tag for t in tags if t.digest in kept_digests),
        delete_digests=doomed_digests,
        delete_tags=sorted(t.tag for t in doomed),
        bytes_freed=sum(doomed_blobs.values()),
    )
