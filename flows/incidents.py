"""Closing an incident by hand: resolve it and its alert, publish the post-incident review."""

from __future__ import annotations

from prefect import flow

from tasks.notify import IncidentResolution, publish_incident_review, resolve_incident


@flow(name="resolve-incident")
def resolve_incident_flow(incident_id: str, note: str) -> IncidentResolution:
    """Resolve the incident (Slack and PagerDuty hear of it) and publish its review as a
    markdown artifact of this run."""
    resolution = resolve_incident(incident_id, note)
    publish_incident_review(resolution.incident)
    return resolution
