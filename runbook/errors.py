"""Error kinds. Only :class:`TransientError` is retried; everything else fails fast.

Like pip's ``DiagnosticPipError``, an error says what went wrong (its message, ``str()``),
and may say what to do about it (``hint``) and where that is explained (``reference``: a
path in this repository, with an anchor: ``README.md#exit-codes``). The message stays one
fact, so reports and logs carry it unchanged; the command line renders the three once, each
on its own line (``runbook_cli/errors.py``). This module imports nothing of runbook.
"""


class RunbookError(Exception):
    """Base of runbook's own errors.

    Attributes:
        hint: What the reader can do about it, one sentence; None when nothing obvious.
        reference: Where it is explained (``docs/operations.md#incidents``); a subclass may
            set it for all its instances.
    """

    hint: str | None = None
    reference: str | None = None

    def __init__(self, *args: object, hint: str | None = None,
                 reference: str | None = None) -> None:
        super().__init__(*args)
        # Instance attributes only when given, so a subclass's class-level ones stay.
        # Both survive pickling (BaseException pickles __dict__), e.g. in Prefect results.
        if hint is not None:
            self.hint = hint
        if reference is not None:
            self.reference = reference
        # A traceback (a run's log in the Prefect UI) shows them too; str() stays the fact.
        for label, text in (("hint", self.hint), ("see", self.reference)):
            if text:
                self.add_note(f"{label}: {text}")


class TransientError(RunbookError):
    """A fault that may pass by itself: connection refused, timeout, 5xx. Retried."""


class ConfigurationError(RunbookError):
    """Bad input or configuration. Never retried; the message names what to fix."""


class GateFailed(RunbookError):
    """A release gate said no. Never retried: the same input gives the same answer."""


class DeployError(RunbookError):
    """A deployment step failed for a reason retrying will not fix."""


class CandidateUnhealthy(DeployError):
    """A revision a target started never became healthy (its health check kept failing,
    its container exited, its pods never got ready). The message carries what the target
    saw and its diagnostics; the flow decides what that means (the candidate-health gate
    of a release, a failed rotation or rollback elsewhere)."""


class RolloutFailed(CandidateUnhealthy):
    """A rollout replacing pods in place did not complete within its deadline (the
    cluster's progress deadline or runbook's own); the target undid it where it could,
    and the message says so."""
