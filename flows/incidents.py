"""Incident flows: escalate what nobody acknowledged (scheduled every minute), resolve by
hand, and the post-incident review."""

from __future__ import annotations

from prefect import flow

from runbook.incidents import Incident
from runbook.settings_root import RunbookSettings
from tasks.incidents import escalate_overdue_incidents, review_incident
from tasks.notify import IncidentResolution, publish_incident_review, resolve_incident


@flow(name="resolve-incident")
def resolve_incident_flow(incident_id: str, note: str) -> IncidentResolution:
    """Resolve the incident (Slack and PagerDuty hear of it) and publish its review as a
    markdown artifact of this run.

    Args:
        incident_id: The incident (INC-...).
        note: What resolved it, kept in the incident's timeline and review.
    """
    resolution = resolve_incident(incident_id, note, RunbookSettings.load())
    publish_incident_review(resolution.incident)
    return resolution


@flow(name="escalate-incidents")
def escalate_incidents() -> list[str]:
    """Every open incident past its response deadline without an acknowledgement pages the
    next contact (runbook.yaml ``contacts``: secondary, then managers) and tells the
    channel. Scheduled every minute; a level is paged once.

    Returns:
        The ids of the incidents escalated by this run.
    """
    escalated, _ = escalate_overdue_incidents(RunbookSettings.load())
    return [incident.id for incident in escalated]


@flow(name="review-incident")
def review_incident_flow(incident_id: str, cause: str, actions: list[str] | None = None,
                         by: str = "runbook") -> Incident:
    """Step 6, the post-incident review of a resolved incident.

    Args:
        incident_id: The incident (INC-...).
        cause: What caused it, in the responders' words.
        actions: What changes so it does not happen again (with owners).
        by: Who wrote the review.
    """
    return review_incident(incident_id, by, cause, actions or [], RunbookSettings.load())
