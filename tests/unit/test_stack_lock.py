"""``stack_lock``: one ``stack up`` or ``down`` at a time, and a wait with a deadline."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runbook.errors import TransientError
from runbook.settings import StackSettings
from runbook.stack.processes import stack_lock


def test_a_second_holder_waits_its_deadline_then_says_who_holds_it(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with stack_lock(settings):
            held.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(timeout=10)
        with pytest.raises(TransientError, match="still holds .*stack.lock after 0 s"), \
                stack_lock(settings, timeout_s=0.2):
            pass
    finally:
        release.set()
        holder.join(timeout=10)
    with stack_lock(settings, timeout_s=5):  # free again once the holder left
        pass
