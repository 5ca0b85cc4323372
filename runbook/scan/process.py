"""Running a scanner's command: exec form, a deadline, and "not installed" kept apart from
"failed" (the first makes the scanner unavailable; the second is an error to fix)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


class ToolMissing(Exception):
    """The scanner's program is not installed here."""


def find_program(name: str) -> str:
    """The program on PATH, or installed beside this interpreter (a venv not on PATH)."""
    beside = Path(sys.executable).parent / name
    found = shutil.which(name) or (str(beside) if beside.exists() else None)
    if found is None:
        raise ToolMissing(f"{name} is not installed")
    return found


def run_tool(argv: list[str], timeout_s: float, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run one scanner; its exit code, stdout and stderr. Raises TimeoutExpired past timeout."""
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, cwd=cwd, check=False
    )
    return completed.returncode, completed.stdout, completed.stderr
