"""Secret rotation as a state machine (pure): which step comes next, given what is done.

The order keeps the live credential valid at every point: the new value is published next
to the old one (overlap), the consumers are verified healthy with both, and only after a
grace period is the old one revoked. Each step is recorded before the next starts, so a
failed run resumes where it stopped and a repeated run does nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel


class Step(StrEnum):
    IDLE = "idle"  # no rotation in progress
    GENERATED = "generated"  # new value made and stored as pending; target unchanged
    OVERLAP_PUBLISHED = "overlap_published"  # target accepts old and new
    VERIFIED = "verified"  # consumers healthy with both; grace period running
    REVOKED = "revoked"  # target accepts only the new value


class Action(StrEnum):
    GENERATE = "generate"
    PUBLISH_OVERLAP = "publish_overlap"
    VERIFY = "verify"
    WAIT_GRACE = "wait_grace"
    REVOKE = "revoke"
    FINISH = "finish"  # promote pending to current, back to idle
    NOTHING = "nothing"  # not due


class RotationState(BaseModel):
    """What the store records per secret (never the values; those live apart)."""

    step: Step = Step.IDLE
    rotated_at: datetime | None = None
    """When the current value became the only valid one; None: never rotated by runbook."""
    created_at: datetime | None = None
    """When the current value was first recorded (age when never rotated)."""
    step_at: datetime | None = None
    """When ``step`` was reached."""


class SecretStatus(BaseModel):
    """What a run reports per secret; never a value."""

    name: str
    automatic: bool
    step: Step
    age_days: float | None
    max_age_days: float
    overdue: bool
    actions: list[Action]


def age_days(state: RotationState, now: datetime) -> float | None:
    since = state.rotated_at or state.created_at
    return (now - since).total_seconds() / 86400 if since else None


def is_due(state: RotationState, now: datetime, max_age_days: float, force: bool = False
           ) -> bool:
    """A rotation starts when forced, when the value is older than allowed or unknown."""
    age = age_days(state, now)
    return force or age is None or age >= max_age_days


def next_action(state: RotationState, now: datetime, grace_s: float, due: bool) -> Action:
    """The one step to take now."""
    if state.step is Step.IDLE:
        return Action.GENERATE if due else Action.NOTHING
    if state.step is Step.GENERATED:
        return Action.PUBLISH_OVERLAP
    if state.step is Step.OVERLAP_PUBLISHED:
        return Action.VERIFY
    if state.step is Step.VERIFIED:
        assert state.step_at is not None  # set with every step
        ready = state.step_at + timedelta(seconds=grace_s)
        return Action.REVOKE if now >= ready else Action.WAIT_GRACE
    return Action.FINISH


def accepted_values(current: str | None, pending: str | None, step: Step) -> list[str]:
    """Values the target must accept at ``step``: new first, the old kept until revoked."""
    if step in (Step.OVERLAP_PUBLISHED, Step.VERIFIED) and pending:
        return [v for v in (pending, current) if v]
    if step is Step.REVOKED and pending:
        return [pending]
    return [current] if current else []
