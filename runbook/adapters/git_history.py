"""Commits of a git checkout touching some paths, through the ``git`` command."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from runbook.errors import TransientError
from runbook.ops.review import Commit

# One record per commit, fields split by a unit separator no subject contains.
_FORMAT = "%x1e%H%x1f%cI%x1f%an%x1f%s"


def commits_touching(repo_dir: Path, paths: list[str], since: datetime | None,
                     timeout_s: float) -> list[Commit] | None:
    """Commits touching ``paths`` (after ``since``), or None when ``repo_dir`` is not in a
    git checkout or git is not installed."""
    git = shutil.which("git")
    if git is None or not _in_checkout(git, repo_dir, timeout_s):
        return None
    command = [git, "-C", str(repo_dir), "log", f"--format={_FORMAT}", "--name-only"]
    if since is not None:
        command.append(f"--since={since.isoformat()}")
    output = _run([*command, "--", *paths], timeout_s)
    return [_commit(record) for record in output.split("\x1e") if record.strip()]


def _in_checkout(git: str, repo_dir: Path, timeout_s: float) -> bool:
    try:
        completed = subprocess.run([git, "-C", str(repo_dir), "rev-parse", "--is-inside-work-tree"],
                                   capture_output=True, text=True, timeout=timeout_s, check=False)
    except (subprocess.TimeoutExpired, FileNotFoundError, NotADirectoryError):
        return False
    return completed.returncode == 0 and completed.stdout.strip() == "true"


def _run(command: list[str], timeout_s: float) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                                   check=False)
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"git log took longer than {timeout_s:.0f} s") from exc
    if completed.returncode != 0:
        raise RuntimeError(f"git log failed: {completed.stderr.strip()}")
    return completed.stdout


def _commit(record: str) -> Commit:
    header, _, names = record.strip("\n").partition("\n")
    sha, committed, author, subject = header.split("\x1f", 3)
    return Commit(sha=sha, committed_at=datetime.fromisoformat(committed), author=author,
                  subject=subject, paths=[n for n in names.splitlines() if n.strip()])
