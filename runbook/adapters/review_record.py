"""When the runbook was last reviewed: one small JSON file in the state directory."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path


def review_record_path(state_dir: Path) -> Path:
    return state_dir / "ops" / "runbook-review.json"


def last_review(state_dir: Path) -> datetime | None:
    path = review_record_path(state_dir)
    if not path.is_file():
        return None
    return datetime.fromisoformat(json.loads(path.read_text())["last_review"])


def record_review(state_dir: Path, when: datetime) -> None:
    path = review_record_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"last_review": when.isoformat()}))
    temporary.replace(path)
