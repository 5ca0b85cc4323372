"""When a person decides instead of the pipeline: pure decisions, no I/O.

Production promotion waits for a person when the policy asks for it, and an inconclusive
verification (no data) asks instead of guessing. No answer within the deadline is a no:
nothing unapproved reaches production traffic, and an unconfirmed release is switched back.
"""

from __future__ import annotations

from enum import StrEnum

from runbook.analysis import Phase
from runbook.models import Approval, Slot
from runbook.policy import DeploySettings

TIMEOUT_DECIDER = "timeout"


class AfterVerification(StrEnum):
    KEEP = "keep"
    ROLL_BACK = "roll_back"
    ASK = "ask"


def promotion_needs_approval(deploy: DeploySettings) -> bool:
    """True when a person must approve moving traffic to the candidate."""
    return deploy.require_approval


def after_verification(phase: Phase, deploy: DeploySettings) -> AfterVerification:
    """What follows a verdict: keep a success, roll back a failure, and ask about an
    inconclusive one when approvals are on (otherwise missing data is never a pass)."""
    if phase is Phase.SUCCESSFUL:
        return AfterVerification.KEEP
    if phase is Phase.INCONCLUSIVE and deploy.require_approval:
        return AfterVerification.ASK
    return AfterVerification.ROLL_BACK


def promotion_question(candidate: Slot, previous: str | None) -> str:
    """The text shown in the Prefect UI's resume form before promotion."""
    return (f"Promote {candidate.service} {candidate.revision} to {candidate.environment}? "
            f"(serving now: {previous or 'nothing'})")


def inconclusive_question(candidate: Slot, reasons: list[str]) -> str:
    """The text shown when verification had too little data to decide."""
    return (f"Verification of {candidate.service} {candidate.revision} in "
            f"{candidate.environment} was inconclusive ({'; '.join(reasons)}). "
            "Keep it? No switches back to the previous revision.")


def answered(stage: str, question: str, approve: bool, reason: str, decided_by: str) -> Approval:
    """A person's answer as recorded in the report; an unnamed person is said to be one."""
    return Approval(stage=stage, question=question, approved=approve,
                    decided_by=decided_by.strip() or "unnamed (Prefect UI)",
                    reason=reason.strip() or "no reason given")


def unanswered(stage: str, question: str, timeout_s: float) -> Approval:
    """Nobody answered within the deadline: a no."""
    return Approval(stage=stage, question=question, approved=False,
                    decided_by=TIMEOUT_DECIDER,
                    reason=f"no decision within {timeout_s:.0f} s")


def describe(approval: Approval) -> str:
    """One line for the report's reason."""
    verb = "approved" if approval.approved else "rejected"
    return f"{approval.stage} {verb} by {approval.decided_by}: {approval.reason}"
