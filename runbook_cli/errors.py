"""How an error reaches the reader: rendered once, here, never inside a message.

``error: <message>`` is one line, never wrapped (CI logs and scripts grep for it); the
error's ``hint`` and ``reference`` (:class:`runbook.errors.RunbookError`) follow, each on a
line of its own, as pip renders its ``DiagnosticPipError``::

    error: local stack not healthy (registry)
    hint: run `runbook stack up`
    see: README.md#the-local-stack
"""

from __future__ import annotations

import sys

from runbook.errors import RunbookError


def error_lines(message: str, hint: str | None = None,
                reference: str | None = None) -> list[str]:
    """The lines an error prints: its message on one line, then its hint and reference."""
    lines = ["error: " + _one_line(message)]
    if hint:
        lines.append("hint: " + _one_line(hint))
    if reference:
        lines.append("see: " + reference)
    return lines


def lines_of(exc: RunbookError) -> list[str]:
    return error_lines(str(exc), exc.hint, exc.reference)


def print_error(lines: list[str]) -> None:
    print("\n".join(lines), file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())
