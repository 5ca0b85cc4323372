"""Dockerfile: hadolint, plus the two runbook rules hadolint has no rule for.

hadolint 2.x flags ``ADD`` of local files (DL3020) and an explicit ``USER root`` (DL3002),
but not ``ADD`` of a remote URL (unverified content pulled at build time) nor a Dockerfile
that never sets ``USER`` (the service runs as root). Both are runbook rules here, checked on
the parsed instructions.
"""

from __future__ import annotations

import re
from pathlib import Path

from runbook.adapters import hadolint
from runbook.models import Finding, Severity

TOOL = "dockerfile-policy"
_REMOTE = re.compile(r"^(https?|ftp)://", re.IGNORECASE)


def scan(dockerfile: Path, timeout_s: float) -> list[Finding]:
    """hadolint's findings and the runbook rules on one Dockerfile."""
    return hadolint.lint(dockerfile, timeout_s) + check(dockerfile.read_text(), dockerfile.name)


def check(text: str, name: str = "Dockerfile") -> list[Finding]:
    """The runbook's Dockerfile rules over the file's instructions (pure)."""
    instructions = list(_instructions(text))
    findings = [
        Finding(tool=TOOL, rule_id="RB-DF001", severity=Severity.HIGH,
                title="ADD fetches a remote URL: unverified content at build time "
                      "(download and verify a checksum in RUN, or COPY a vetted file)",
                location=f"{name}:{line}")
        for line, keyword, args in instructions
        if keyword == "ADD" and any(_REMOTE.match(arg) for arg in args.split())
    ]
    if not any(keyword == "USER" for _, keyword, _ in instructions):
        last = instructions[-1][0] if instructions else 1
        findings.append(Finding(
            tool=TOOL, rule_id="RB-DF002", severity=Severity.HIGH,
            title="no USER instruction: the container runs as root",
            location=f"{name}:{last}",
        ))
    return findings


def _instructions(text: str) -> list[tuple[int, str, str]]:
    """(first line number, KEYWORD, arguments) per instruction, continuations joined."""
    result: list[tuple[int, str, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if pending is None and (not line or line.startswith("#")):
            continue
        start, body = pending if pending else (number, "")
        body += " " + line.rstrip("\\")
        if line.endswith("\\"):
            pending = (start, body)
            continue
        pending = None
        keyword, _, args = body.strip().partition(" ")
        result.append((start, keyword.upper(), args.strip()))
    return result
