"""Asking a person: the flow run pauses with a typed form in the Prefect UI."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from runbook.approval import answered, unanswered
from runbook.models import Approval
from runbook.names import Stage
from runbook.policy import DeploySettings


class ApprovalInput(RunInput):
    """The resume form: the decision, why, and who takes it (OSS Prefect has no users)."""

    approve: bool = Field(description="Yes: go ahead. No: stop (nothing moves) / switch back.")
    reason: str = Field(default="", description="Why; goes into the run report.")
    decided_by: str = Field(default="", description="Your name; goes into the run report.")


def ask_for_approval(stage: Stage, question: str, deploy: DeploySettings) -> Approval:
    """Pause the current flow run until a person answers ``question`` or the deadline passes.

    Args:
        stage: What is decided (``Stage.PROMOTE``, or ``Stage.VERIFY`` for an inconclusive
            verification); recorded in the report.
        question: Shown above the form in the Prefect UI.
        deploy: The policy's deadline and polling interval.

    Returns:
        The decision; a timeout is a rejection decided by "timeout".
    """
    logger = get_run_logger()
    logger.info("waiting up to %d s for a decision: %s", deploy.approval_timeout_s, question)
    try:
        answer = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=question, approve=False),
            timeout=deploy.approval_timeout_s,
            poll_interval=deploy.approval_poll_s,
            key=f"approval-{stage}",
        )
    except FlowPauseTimeout:
        return unanswered(stage, question, deploy.approval_timeout_s)
    decision = answered(stage, question, answer.approve, answer.reason, answer.decided_by)
    logger.info("decision: %s by %s (%s)", "approved" if decision.approved else "rejected",
                decision.decided_by, decision.reason)
    return decision
