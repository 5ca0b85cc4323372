"""Code lint by language: ruff for Python, shellcheck for shell scripts (hadolint for the
Dockerfile is in ``dockerfile.py``).

Each tool's own levels map onto runbook severities here; the policy decides which
severities block (``scan.lint_block_severities``: high, as the runbook says) and can rate a
single rule differently (``scan.lint_rule_severities``). Ruff rates nothing itself, so its
rules are rated by code prefix (``scan.ruff_severities``, longest prefix wins): errors that
break the program at run time (syntax errors, undefined names) are high, likely bugs medium,
the rest low.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runbook.models import Finding, Severity
from runbook.scan.errors import ScanOutputError
from runbook.scan.process import find_program, run_tool

RUFF = "ruff"
SHELLCHECK = "shellcheck"
SKIPPED_DIRS = frozenset({".git", ".runbook", ".venv", "venv", "node_modules", "__pycache__"})
SHELL_SUFFIXES = (".sh", ".bash")
_SHELLS = ("sh", "bash", "dash", "ksh")
_SHELLCHECK_LEVELS = {"error": Severity.HIGH, "warning": Severity.MEDIUM,
                      "info": Severity.LOW, "style": Severity.INFO}
SYNTAX_ERROR = "syntax-error"


class NothingToLint(Exception):
    """The service has no file in this tool's language."""


def ruff_command(source_dir: Path, select: list[str]) -> list[str]:
    # --exit-zero: findings are data, not a failure; --no-cache: never write into the service.
    return [find_program(RUFF), "check", "--output-format", "json", "--no-cache", "--exit-zero",
            "--select", ",".join(select), "--extend-exclude", ".runbook", "."]


def ruff_scan(source_dir: Path, select: list[str], severities: dict[str, Severity],
              timeout_s: float) -> list[Finding]:
    """Ruff on the service's Python files. Raises NothingToLint, ToolMissing,
    ScanOutputError."""
    if not any(python_files(source_dir)):
        raise NothingToLint("no Python file")
    code, stdout, stderr = run_tool(ruff_command(source_dir, select), timeout_s, cwd=source_dir)
    if code != 0:
        raise ScanOutputError(f"ruff exited {code}: {stderr.strip()[-200:]}")
    return parse_ruff(stdout, source_dir, severities)


def parse_ruff(report: str, source_dir: Path, severities: dict[str, Severity]
               ) -> list[Finding]:
    """Ruff's ``--output-format json`` list; locations relative to the service."""
    try:
        items: list[dict[str, Any]] = json.loads(report or "[]")
        return [_ruff_finding(item, source_dir, severities) for item in items]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ScanOutputError(f"ruff: unreadable JSON report ({exc!r})") from exc


def ruff_severity(code: str, severities: dict[str, Severity]) -> Severity:
    """The severity of the longest matching code prefix; low when none matches."""
    matching = [prefix for prefix in severities if code.startswith(prefix)]
    return severities[max(matching, key=len)] if matching else Severity.LOW


def _ruff_finding(item: dict[str, Any], source_dir: Path,
                  severities: dict[str, Severity]) -> Finding:
    code = str(item.get("code") or SYNTAX_ERROR)  # ruff gives syntax errors no code
    severity = Severity.HIGH if code == SYNTAX_ERROR else ruff_severity(code, severities)
    return Finding(tool=RUFF, rule_id=code, severity=severity, title=str(item["message"]),
                   location=f"{_relative(item['filename'], source_dir)}:"
                            f"{item['location']['row']}")


def shell_scripts(source_dir: Path) -> list[Path]:
    """``*.sh``, ``*.bash`` and files whose first line is a POSIX-shell or bash shebang."""
    return sorted(path for path in _files(source_dir)
                  if path.suffix in SHELL_SUFFIXES or _shell_shebang(path))


def shellcheck_command(scripts: list[Path], source_dir: Path) -> list[str]:
    return [find_program(SHELLCHECK), "--format", "json1", "--severity", "style",
            *[str(path.relative_to(source_dir)) for path in scripts]]


def shellcheck_scan(source_dir: Path, timeout_s: float) -> list[Finding]:
    """shellcheck on the service's shell scripts. Raises NothingToLint, ToolMissing,
    ScanOutputError."""
    scripts = shell_scripts(source_dir)
    if not scripts:
        raise NothingToLint("no shell script")
    # Exit 1 means "findings"; anything above is a shellcheck failure.
    code, stdout, stderr = run_tool(shellcheck_command(scripts, source_dir), timeout_s,
                                    cwd=source_dir)
    if code > 1:
        raise ScanOutputError(f"shellcheck exited {code}: {stderr.strip()[-200:]}")
    return parse_shellcheck(stdout)


def parse_shellcheck(report: str) -> list[Finding]:
    """shellcheck's ``--format json1`` (``{"comments": [...]}``)."""
    try:
        comments: list[dict[str, Any]] = json.loads(report)["comments"]
        return [Finding(tool=SHELLCHECK, rule_id=f"SC{item['code']}",
                        severity=_SHELLCHECK_LEVELS.get(str(item.get("level")), Severity.LOW),
                        title=str(item["message"]),
                        location=f"{Path(str(item['file'])).as_posix()}:{item['line']}")
                for item in comments]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ScanOutputError(f"shellcheck: unreadable JSON report ({exc!r})") from exc


def rerate(findings: list[Finding], overrides: dict[str, Severity]) -> list[Finding]:
    """Apply the policy's per-rule severities (keys ``tool:RULE``), pure."""
    return [f.model_copy(update={"severity": overrides[f"{f.tool}:{f.rule_id}"]})
            if f"{f.tool}:{f.rule_id}" in overrides else f for f in findings]


def python_files(source_dir: Path) -> Iterator[Path]:
    return (path for path in _files(source_dir) if path.suffix == ".py")


def _files(source_dir: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        for name in files:
            yield Path(root) / name


def _shell_shebang(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            first = handle.readline(200).decode(errors="replace").strip()
    except OSError:
        return False
    if not first.startswith("#!"):
        return False
    words = first[2:].split()
    if not words:
        return False
    program = Path(words[0]).name
    if program == "env" and len(words) > 1:
        program = words[1]
    return program in _SHELLS


def _relative(filename: str, source_dir: Path) -> str:
    path = Path(filename)
    if path.is_absolute() and path.is_relative_to(source_dir):
        path = path.relative_to(source_dir)
    return path.as_posix()
