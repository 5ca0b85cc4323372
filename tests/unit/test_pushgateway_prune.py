"""The Pushgateway's old run groups are looked for at most once per PRUNE_EVERY_S."""

from __future__ import annotations

import os
from pathlib import Path

from runbook.adapters.pushgateway import PRUNE_EVERY_S, _claim_prune


def test_the_first_push_prunes_and_records_it(tmp_path: Path) -> None:
    marker = tmp_path / "state" / "pushgateway-pruned-at"
    assert _claim_prune(marker, now_s=1e9)
    assert marker.exists()


def test_a_recent_prune_is_not_repeated_an_old_one_is(tmp_path: Path) -> None:
    marker = tmp_path / "pushgateway-pruned-at"
    marker.touch()
    pruned_at = marker.stat().st_mtime
    assert not _claim_prune(marker, now_s=pruned_at + PRUNE_EVERY_S - 1)
    assert _claim_prune(marker, now_s=pruned_at + PRUNE_EVERY_S + 1)
    os.utime(marker, (pruned_at, pruned_at))  # as if that prune were long ago, again
    assert _claim_prune(marker, now_s=pruned_at + 2 * PRUNE_EVERY_S)
