"""Notify stage: the run's alert (deduplicated) or the resolution of open ones, through the
outbox; incident reviews as Prefect artifacts."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from runbook.alerts.models import Alert
from runbook.alerts.notifier import FlushResult, Notifier, notifier_for
from runbook.alerts.release import plan_release_alerts
from runbook.incidents import (
    Incident,
    IncidentStatus,
    Step,
    complete_step,
    mitigate,
    now_utc,
    review_markdown,
)
from runbook.models import Outcome, RunReport
from runbook.settings_root import RunbookSettings


class NotifyResult(BaseModel):
    triggered: list[str] = []
    """Dedup keys of alerts raised by this call (duplicates of open alerts excluded)."""
    resolved: list[str] = []
    incidents: list[str] = []
    """Incidents opened, touched or resolved, by id."""
    delivered: int = 0
    waiting: int = 0
    """Alerts still in the outbox after this call."""


def open_notifier(settings: RunbookSettings) -> Notifier:
    """The notifier of the state store, with the contacts of runbook.yaml."""
    return notifier_for(settings.alerts, settings.stack)


@task(name="notify_release", cache_policy=NO_CACHE)
def notify_release(report: RunReport, settings: RunbookSettings) -> NotifyResult:
    """Raise the run's alert or resolve the service/environment's open ones, then deliver."""
    notifier = open_notifier(settings)
    plan = plan_release_alerts(report, notifier.open_alerts(report.service, report.environment))
    result = NotifyResult()
    alerts: list[Alert] = [plan.trigger] if plan.trigger else []
    for alert in [*alerts, *plan.resolve]:
        published = notifier.publish(alert)
        if published.enqueued:
            target = result.triggered if alert in alerts else result.resolved
            target.append(alert.dedup_key)
        if published.incident is not None:
            result.incidents.append(published.incident.id)
            if published.incident.status is IncidentStatus.RESOLVED:
                publish_incident_review.fn(published.incident)
            elif alert in alerts and report.outcome is Outcome.ROLLED_BACK:
                # The pipeline mitigated already: the incident says so from the start.
                note = f"automatic rollback: traffic back on {report.revision or 'nothing'}"
                notifier.incidents.change(
                    published.incident.id,
                    lambda incident, note=note: mitigate(incident, now_utc(), "runbook", note))
    return flushed(notifier, result)


@task(name="publish_alert", cache_policy=NO_CACHE)
def publish_alert(alert: Alert, settings: RunbookSettings) -> NotifyResult:
    """Publish one alert (trigger or resolve) and deliver what the outbox holds."""
    notifier = open_notifier(settings)
    published = notifier.publish(alert)
    result = NotifyResult(incidents=[published.incident.id] if published.incident else [])
    if published.enqueued:
        result.triggered.append(alert.dedup_key)
    return flushed(notifier, result)


@task(name="flush_outbox", cache_policy=NO_CACHE)
def flush_outbox(settings: RunbookSettings) -> NotifyResult:
    """Deliver alerts that earlier runs could not (for the daily flow)."""
    return flushed(open_notifier(settings), NotifyResult())


@task(name="publish_incident_review", cache_policy=NO_CACHE)
def publish_incident_review(incident: Incident) -> None:
    """The post-incident review of a resolved incident, as a Prefect markdown artifact."""
    create_markdown_artifact(
        key=f"incident-review-{incident.id.lower()}",
        markdown=review_markdown(incident),
        description=f"{incident.priority.value} {incident.service}/{incident.environment}: "
                    f"{incident.title}"[:500],
    )


class IncidentResolution(BaseModel):
    incident: Incident
    notify: NotifyResult


@task(name="resolve_incident", cache_policy=NO_CACHE)
def resolve_incident(incident_id: str, note: str, settings: RunbookSettings
                     ) -> IncidentResolution:
    """Resolve an incident and its open alert (PagerDuty resolves with the same key), then
    deliver."""
    notifier = open_notifier(settings)
    published = notifier.resolve_incident(incident_id, note)
    incident = published.incident or notifier.incidents.get(incident_id)
    result = NotifyResult(incidents=[incident_id])
    if published.enqueued:
        result.resolved.append(incident.dedup_key)
    return IncidentResolution(incident=incident, notify=flushed(notifier, result))


@task(name="record_incident_step", cache_policy=NO_CACHE)
def record_incident_step(incident_id: str, step: Step, note: str,
                         settings: RunbookSettings) -> Incident:
    """Mark one response step of an incident done (e.g. mitigate: rolled back)."""
    _, incident = open_notifier(settings).incidents.change(
        incident_id, lambda current: complete_step(current, step, now_utc(), note))
    return incident


def flushed(notifier: Notifier, result: NotifyResult) -> NotifyResult:
    """Deliver what the outbox holds; log what could not go; count it in ``result``."""
    flush: FlushResult = notifier.flush()
    logger = get_run_logger()
    if flush.no_channel:
        logger.warning("no alert channel is configured (RUNBOOK_ALERT_SLACK_TOKEN, "
                       "RUNBOOK_ALERT_SMTP_HOST + RUNBOOK_ALERT_SMTP_TO, "
                       "RUNBOOK_ALERT_PAGERDUTY_ROUTING_KEY): %d alert(s) wait in the outbox of %s",
                       flush.waiting, notifier.store.url)
    for entry_id, channel, error in flush.failed:
        logger.warning("alert %s: %s not delivered (%s); it stays in the outbox",
                       entry_id, channel.value, error)
    result.delivered = len(flush.delivered)
    result.waiting = flush.waiting
    return result
