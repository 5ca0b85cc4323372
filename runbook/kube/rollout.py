"""Is a Deployment's rollout done, still going, or failed? (pure, kubectl's rules)"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class RolloutPhase(StrEnum):
    DONE = "done"
    PROGRESSING = "progressing"
    FAILED = "failed"


class RolloutStatus(BaseModel):
    phase: RolloutPhase
    message: str


def rollout_status(deployment: dict[str, Any]) -> RolloutStatus:
    """Done when the controller saw the latest spec and updated == ready == desired replicas,
    with no old replica left; failed when the controller reports ProgressDeadlineExceeded."""
    meta, spec = deployment["metadata"], deployment["spec"]
    status = deployment.get("status") or {}
    generation = meta.get("generation", 0)
    observed = status.get("observedGeneration", 0)
    if observed < generation:
        return _progressing(f"controller has not observed generation {generation} yet")
    deadline = _condition(status, "Progressing")
    if deadline and deadline.get("reason") == "ProgressDeadlineExceeded":
        return RolloutStatus(phase=RolloutPhase.FAILED,
                             message="progress deadline exceeded: " + describe_conditions(status))
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    ready = status.get("readyReplicas", 0)
    total = status.get("replicas", 0)
    if updated < desired:
        return _progressing(f"{updated} of {desired} replicas updated")
    if total > updated:
        return _progressing(f"{total - updated} old replicas pending termination")
    if ready < desired:
        return _progressing(f"{ready} of {desired} updated replicas ready")
    return RolloutStatus(phase=RolloutPhase.DONE, message=f"{desired} replicas updated and ready")


def describe_conditions(status: dict[str, Any]) -> str:
    """The Deployment's conditions on one line, as the error a person reads."""
    conditions = status.get("conditions") or []
    if not conditions:
        return "no conditions reported"
    return "; ".join(
        f"{c.get('type')}={c.get('status')} ({c.get('reason', '')}: {c.get('message', '')})"
        for c in conditions
    )


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def _progressing(message: str) -> RolloutStatus:
    return RolloutStatus(phase=RolloutPhase.PROGRESSING, message=message)
