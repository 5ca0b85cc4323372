"""Pure routing: which channels an alert goes to, which people it reaches, who is next when
nobody acknowledges. No I/O."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from runbook.alerts.contacts import Contact, ContactsConfig
from runbook.alerts.models import Alert, AlertKind, Channel, Severity
from runbook.alerts.settings import ServiceRouting
from runbook.incidents import Incident, Priority


class Route(BaseModel):
    """Channels that must each receive the alert once, and the fallback when one cannot."""

    channels: list[Channel]
    fallback: Channel | None = None


def route(alert: Alert, routing: ServiceRouting, configured: frozenset[Channel]) -> Route:
    """Runbook: everything to Slack; critical production alerts page; email is the fallback
    and goes to the service's own recipients.

    Channels are chosen by rule first and then kept only when configured: an alert for an
    unconfigured channel would wait in the outbox forever.

    Args:
        alert: what happened.
        routing: the service's routing (page environments, extra email recipients).
        configured: channels with credentials.

    Returns:
        The channels to deliver to, in order, and the fallback channel.
    """
    wanted = [Channel.SLACK]
    if alert.severity is Severity.CRITICAL and alert.environment in routing.page_environments:
        wanted.append(Channel.PAGERDUTY)
    if routing.email_to:
        wanted.append(Channel.EMAIL)
    channels = [channel for channel in wanted if channel in configured]
    fallback = Channel.EMAIL if Channel.EMAIL in configured else None
    if not channels and fallback is not None:
        return Route(channels=[fallback])
    return Route(channels=channels, fallback=None if fallback in channels else fallback)


# -- people: who is paged, who is told, who is next (runbook "Contact Information") ------

PAGED_PRIORITIES = frozenset({Priority.P1, Priority.P2})
"""Escalations page (PagerDuty) for these; a P3 escalates by Slack only (not urgent enough
to wake someone)."""


def escalation_levels(contacts: ContactsConfig) -> list[list[Contact]]:
    """Level 0 the primary, 1 the secondary, 2 every manager; levels with nobody left out."""
    levels = [[contacts.primary] if contacts.primary else [],
              [contacts.secondary] if contacts.secondary else [], list(contacts.managers)]
    return [level for level in levels if level]


class EscalationPlan(BaseModel):
    """Who to reach now for one overdue incident."""

    incident_id: str
    level: int
    contacts: list[Contact]
    page: bool
    """Page them (PagerDuty) as well as telling the channel."""
    overdue_min: float


def due_escalation(incident: Incident, contacts: ContactsConfig, now: datetime
                   ) -> EscalationPlan | None:
    """The next escalation of an unacknowledged incident, if one is due now.

    Level 1 is due once the response deadline passed without an acknowledgement, each
    next level one more response time later (runbook: P1 15 min -> secondary, 30 min ->
    managers). Acknowledged or resolved incidents never escalate; past the last level
    nothing more is due.
    """
    if not incident.overdue(now):
        return None
    levels = escalation_levels(contacts)
    reached = len(incident.escalations)
    level = reached + 1
    if level >= len(levels):
        return None
    step = contacts.response.deadline(incident.priority)
    due_at = incident.respond_by + step * reached
    if now < due_at:
        return None
    return EscalationPlan(
        incident_id=incident.id, level=level, contacts=levels[level],
        page=incident.priority in PAGED_PRIORITIES,
        overdue_min=(now - incident.respond_by).total_seconds() / 60)


def escalation_alert(incident: Incident, plan: EscalationPlan, contact: Contact) -> Alert:
    """The page and Slack message of an escalation to one contact: its own dedup key (a new
    PagerDuty incident, on the contact's routing key), the incident's service and
    environment. A contact without a page, or a P3, gets the Slack message only."""
    pages = plan.page and contact.pagerduty is not None
    return Alert(
        kind=AlertKind.PRODUCTION_DOWN if incident.priority is Priority.P1
        else AlertKind.DEPLOYMENT_FAILURE,
        severity=Severity.CRITICAL if pages else Severity.WARNING,
        service=incident.service, environment=incident.environment,
        summary=(f"ESCALATED to {contact.name}: {incident.id} ({incident.priority.value}) "
                 f"unacknowledged {plan.overdue_min:.0f} min past its deadline: "
                 f"{incident.title}")[:1000],
        details=f"Please acknowledge: runbook incident ack {incident.id}",
        link=incident.link, mentions=[contact.mention],
        page_key_env=contact.pagerduty.routing_key_env if pages and contact.pagerduty else None,
        dedup_key=escalation_key(incident.dedup_key, plan.level, contact.name))


def escalation_key(incident_key: str, level: int, name: str) -> str:
    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower())
    return f"{incident_key}/escalation-{level}/{slug}"[:255]


def escalation_keys(incident_key: str, keys: list[str]) -> list[str]:
    """The open escalation alerts of an incident (resolved and acknowledged with it)."""
    return [key for key in keys if key.startswith(f"{incident_key}/escalation-")]
