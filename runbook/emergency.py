"""The runbook's emergency procedures as data: what each one raised, did and left to people.

Pure: the alerts the procedures publish, their result record and its markdown (the flow's
Prefect artifact). The flows in ``flows/emergency.py`` do the I/O through tasks.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from runbook.alerts.models import Alert, AlertKind, make_alert
from runbook.ops.rotation import SecretStatus
from runbook.ops.rotation import Step as RotationStep

ROTATION_PENDING = (
    "secrets NOT rotated: no service directory was given, so runbook does not know the "
    "service's declared secrets; rotate every secret the service can read "
    "(`secret-rotation` with force), then redeploy"
)
"""Said when the security-incident flow cannot rotate: never faked."""

SECURITY_GRACE_S = 5.0
"""How long old and new secrets overlap in a security incident: long enough for the
restart to be verified, short because the old value is presumed leaked."""


def rotation_pending(statuses: list[SecretStatus]) -> list[str]:
    """What the rotation left undone: manual secrets and rotations that did not finish."""
    return [f"secret {s.name} NOT rotated ({'manual' if not s.automatic else s.step.value}):"
            " rotate it by hand now" for s in statuses
            if not s.automatic or s.step is not RotationStep.IDLE or not s.actions]


class Procedure(StrEnum):
    PRODUCTION_OUTAGE = "production_outage"
    SECURITY_INCIDENT = "security_incident"


class EmergencyStatus(StrEnum):
    MITIGATED = "mitigated"
    """Traffic is safe again (rolled back, or isolated); the incident stays open for people."""
    NOT_MITIGATED = "not_mitigated"
    """The automatic step could not be taken; people were paged with the reason."""


class EmergencyResult(BaseModel):
    """What one emergency procedure did (the flow's return value and artifact)."""

    procedure: Procedure
    status: EmergencyStatus
    service: str
    environment: str
    reason: str
    """Why the procedure was started (the caller's words)."""
    incident_id: str | None = None
    priority: str | None = None
    serving_before: str | None = None
    """Revision that served before the procedure."""
    serving_after: str | None = None
    """Revision serving after it (none: isolated)."""
    actions: list[str] = Field(default_factory=list)
    """What was done, in order."""
    pending: list[str] = Field(default_factory=list)
    """What the procedure could not do and people must."""
    healthy_after: bool | None = None
    """Production outage: the standard checks on the revision rolled back to passed
    (None: not checked)."""
    rotated: list[str] = Field(default_factory=list)
    """Security incident: the secrets rotated (new value published, old one revoked)."""
    alerts_delivered: int = 0
    alerts_waiting: int = 0
    """Alerts still in the outbox (a channel was down): they are sent by the next run."""
    flow_run_url: str | None = None


OUTAGE_CAUSE = "outage"
AUTOMATIC_STEP_CAUSE = "automatic-step-failed"


def outage_alert(service: str, environment: str, reason: str, link: str | None) -> Alert:
    """The P1 page of a production outage, sent *before* anything is tried: a failure of
    the automatic rollback (router, engine, Prometheus down) never costs the page."""
    return make_alert(AlertKind.PRODUCTION_DOWN, service, environment,
                      "production outage: rolling back to the kept revision now",
                      details=reason, link=link, cause=OUTAGE_CAUSE)


def outage_rollback_failed_alert(service: str, environment: str, problem: str,
                                 live_now: str | None, link: str | None) -> Alert:
    """The outage's automatic rollback did not happen: a second problem, its own page."""
    return make_alert(AlertKind.ROLLBACK_FAILED, service, environment,
                      f"outage NOT rolled back ({problem}); live now {live_now or 'unknown'}: "
                      "act now", details=problem, link=link, cause=AUTOMATIC_STEP_CAUSE)


def security_alert(service: str, environment: str, reason: str, link: str | None,
                   rotation: str = ROTATION_PENDING) -> Alert:
    """The P1 security incident for the security team and the on-call, sent before the
    isolation is tried."""
    return make_alert(AlertKind.SECURITY_INCIDENT, service, environment,
                      "security incident: isolating the service (zero traffic) now",
                      details=f"{reason}\n{rotation}", link=link,
                      cause="security-incident")


def isolation_failed_alert(service: str, environment: str, problem: str,
                           link: str | None) -> Alert:
    """The isolation of a security incident failed: isolate by hand, now."""
    return make_alert(AlertKind.SECURITY_INCIDENT, service, environment,
                      f"security incident: isolation FAILED ({problem}): isolate by hand now",
                      details=problem, link=link, cause=AUTOMATIC_STEP_CAUSE)


def to_markdown(result: EmergencyResult) -> str:
    """The result as the flow's Prefect artifact."""
    title = result.procedure.value.replace("_", " ")
    incident = f"{result.incident_id} ({result.priority})" if result.incident_id else "—"
    actions = "\n".join(f"1. {action}" for action in result.actions) or "_none_"
    pending = "\n".join(f"- **{item}**" for item in result.pending) or "_nothing_"
    waiting = (f" — {result.alerts_waiting} waiting in the outbox"
               if result.alerts_waiting else "")
    return (
        f"# {title.capitalize()}: {result.service}/{result.environment} — "
        f"{result.status.value.replace('_', ' ')}\n\n"
        f"Reason: {result.reason}\n\n"
        f"| incident | serving before | serving after | alerts delivered |\n"
        f"|---|---|---|---|\n"
        f"| {incident} | {result.serving_before or '—'} | {result.serving_after or 'nothing'} "
        f"| {result.alerts_delivered}{waiting} |\n\n"
        f"## Done\n\n{actions}\n\n## Left to people\n\n{pending}\n"
    )
