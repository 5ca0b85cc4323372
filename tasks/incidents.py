"""Incident response tasks: the six steps recorded, escalation of unacknowledged incidents,
the post-incident review (record in the store, Prefect artifact)."""

from __future__ import annotations

from collections.abc import Callable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runbook.adapters.prefect_runs import flow_run_records
from runbook.incidents import Incident, assess, mitigate, now_utc, post_incident_review
from runbook.settings_root import RunbookSettings
from tasks.notify import NotifyResult, flushed, open_notifier, publish_incident_review
from tasks.retry import TRANSIENT_RETRIES


@task(name="escalate_overdue_incidents", cache_policy=NO_CACHE)
def escalate_overdue_incidents(settings: RunbookSettings
                               ) -> tuple[list[Incident], NotifyResult]:
    """Page the next contacts of every incident past its deadline without an
    acknowledgement (secondary, then managers), then deliver."""
    notifier = open_notifier(settings)
    escalated = notifier.escalate_overdue(now_utc())
    logger = get_run_logger()
    for incident in escalated:
        last = incident.escalations[-1]
        logger.warning("%s (%s) unacknowledged past %s: escalated to %s via %s", incident.id,
                       incident.priority.value, incident.respond_by, ", ".join(last.to),
                       ", ".join(last.channels) or "no channel")
    return escalated, flushed(notifier, NotifyResult(incidents=[i.id for i in escalated]))


@task(name="assess_incident", cache_policy=NO_CACHE)
def assess_incident(incident_id: str, by: str, impact: str,
                    settings: RunbookSettings) -> Incident:
    """Record the impact assessment (step 2), under the incident's row lock."""
    return _changed(settings, incident_id,
                    lambda incident: assess(incident, now_utc(), by, impact))


@task(name="communicate_incident", cache_policy=NO_CACHE)
def communicate_incident(incident_id: str, by: str, message: str,
                         settings: RunbookSettings) -> Incident:
    """Send a status update to the incident's channels and record what and to whom."""
    notifier = open_notifier(settings)
    incident = notifier.communicate(incident_id, by, message)
    flushed(notifier, NotifyResult(incidents=[incident_id]))
    return incident


@task(name="mitigate_incident", cache_policy=NO_CACHE)
def mitigate_incident(incident_id: str, by: str, action: str,
                      settings: RunbookSettings) -> Incident:
    """Record the mitigation taken (step 4), under the incident's row lock."""
    return _changed(settings, incident_id,
                    lambda incident: mitigate(incident, now_utc(), by, action))


def _changed(settings: RunbookSettings, incident_id: str,
             change: Callable[[Incident], Incident]) -> Incident:
    # A read-modify-write under the row lock: an acknowledge or resolve arriving from the
    # receiver at the same moment is not overwritten by a stale copy.
    return open_notifier(settings).incidents.change(incident_id, change)[1]


@task(name="review_incident", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def review_incident(incident_id: str, by: str, cause: str, actions: list[str],
                    settings: RunbookSettings) -> Incident:
    """The post-incident review: timeline merged from the incident record, its alerts
    (outbox) and the Prefect run it links to; cause and actions; saved with the incident
    and published as the ``incident-review-<id>`` artifact."""
    notifier = open_notifier(settings)
    incident = notifier.incidents.get(incident_id)
    records = [*notifier.alert_records(incident), *flow_run_records(incident.link)]
    reviewed = post_incident_review(incident, now_utc(), by, cause, actions, records)
    notifier.incidents.save(reviewed)
    publish_incident_review.fn(reviewed)
    return reviewed


@task(name="read_incidents", cache_policy=NO_CACHE)
def read_incidents(settings: RunbookSettings) -> list[Incident]:
    """Every incident of the store (DORA's time to restore)."""
    return open_notifier(settings).incidents.all()
