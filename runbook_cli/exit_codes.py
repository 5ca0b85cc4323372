"""Every exit code of the ``runbook`` command, in one place.

A script or CI job tells the outcomes apart by the code alone; the README's "Exit codes"
table and ``runbook --help`` show this module. 1 is what Python itself exits with on an
unexpected error, so it means "runbook or its infrastructure broke", never a verdict on the
release.
"""

from __future__ import annotations

from enum import IntEnum

from runbook.models import Outcome


class ExitCode(IntEnum):
    """A code with its meaning (``meaning``), shown by ``runbook --help``."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, ("released: live and verified; other commands: done (rollback healthy, "
             "perf check passed, stack healthy)")
    FAILED = 1, ("failed: runbook or its infrastructure broke, not a verdict on the release; "
                 "other commands: not done (rollback unhealthy, perf check not passed, "
                 "stack unhealthy)")
    BAD_INPUT = 2, "bad input or configuration: one error line (and its hint), nothing started"
    ROLLBACK_FAILED = 3, ("rollback_failed: verification said no and switching back failed "
                          "too; what serves is not verified, act now")
    BLOCKED = 4, "blocked: a gate said no before any traffic moved, nothing changed"
    ROLLED_BACK = 5, "rolled_back: deployed, found bad, the previous revision serves again"


_BY_OUTCOME: dict[Outcome, ExitCode] = {
    Outcome.RELEASED: ExitCode.OK,
    Outcome.FAILED: ExitCode.FAILED,
    Outcome.ROLLBACK_FAILED: ExitCode.ROLLBACK_FAILED,
    Outcome.BLOCKED: ExitCode.BLOCKED,
    Outcome.ROLLED_BACK: ExitCode.ROLLED_BACK,
}


def exit_code_for(outcome: Outcome) -> ExitCode:
    """The exit code of a pipeline run that ended in ``outcome``."""
    return _BY_OUTCOME[outcome]


def exit_code_table() -> str:
    """One line per code, for ``runbook --help``."""
    return "\n".join(f"{code.value}  {code.meaning}" for code in ExitCode)
