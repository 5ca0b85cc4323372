"""Quarterly runbook review (pure): what changed in the runbook's wiring since the last
review, from commits already read out of git."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Commit(BaseModel):
    sha: str
    committed_at: datetime
    author: str
    subject: str
    paths: list[str]
    """Files the commit touched, among the reviewed paths."""


class RunbookReview(BaseModel):
    generated_at: datetime
    last_review: datetime | None
    """None: no review recorded yet; every commit counts."""
    in_git: bool
    """False when the code runs outside a git checkout: no history to show."""
    watched: list[str]
    commits: list[Commit]
    changed_paths: dict[str, int]
    """Reviewed file -> number of commits that touched it since the last review."""


def runbook_review(commits: list[Commit] | None, last_review: datetime | None,
                   now: datetime, watched: list[str]) -> RunbookReview:
    """The review reminder: commits to ``watched`` since ``last_review``, newest first.

    ``commits`` is None outside a git checkout."""
    recent = [c for c in commits or [] if last_review is None or c.committed_at > last_review]
    recent.sort(key=lambda c: c.committed_at, reverse=True)
    changed: dict[str, int] = {}
    for commit in recent:
        for path in commit.paths:
            changed[path] = changed.get(path, 0) + 1
    return RunbookReview(generated_at=now, last_review=last_review,
                         in_git=commits is not None, watched=watched, commits=recent,
                         changed_paths=dict(sorted(changed.items())))
