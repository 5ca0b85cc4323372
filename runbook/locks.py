"""File locks across processes, every wait with a deadline (``filelock``: ``flock`` on Unix).

One helper for the router's table, the stack's ``up``/``down`` and a route's containers:
the caller says what a timeout means, since only it knows what holds the lock that long."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from runbook.errors import TransientError


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float, on_timeout: str, *, poll_s: float = 0.05,
              hint: str | None = None) -> Iterator[None]:
    """Hold ``path``'s lock for the block. Waiting longer than ``timeout_s`` raises a
    ``TransientError`` saying ``on_timeout``; only the wait is covered, so an error of the
    block itself comes out as it was."""
    lock = FileLock(path, timeout=timeout_s, poll_interval=poll_s, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise TransientError(on_timeout, hint=hint) from None
    try:
        yield
    finally:
        lock.release()
