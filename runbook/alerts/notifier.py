"""Publishing an alert: deduplicate it, open or resolve its incident, put it in the outbox,
then deliver what the outbox holds. The one entry point the pipeline, the emergency flows,
the Alertmanager receiver and the CLI share."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from runbook.alerts.contacts import audience
from runbook.alerts.email import send_email
from runbook.alerts.errors import DeliveryFailed
from runbook.alerts.models import Alert, AlertAction, AlertKind, Channel, Severity
from runbook.alerts.outbox import Claim, Outbox, OutboxEntry
from runbook.alerts.pagerduty import send_pagerduty
from runbook.alerts.routing import due_escalation, escalation_alert, escalation_keys, route
from runbook.alerts.settings import AlertSettings, ServiceRouting
from runbook.alerts.slack import send_slack
from runbook.config import StateConfig
from runbook.errors import ConfigurationError
from runbook.incident_store import IncidentStore
from runbook.incidents import (
    Category,
    Escalation,
    Incident,
    IncidentStatus,
    TimelineEntry,
    acknowledge,
    communicate,
    now_utc,
    open_incident,
    record_escalation,
    resolve,
)
from runbook.settings import StackSettings
from runbook.store import StateStore, as_store, store_for

log = logging.getLogger(__name__)

Sender = Callable[[Alert, AlertSettings], object]


def _slack(alert: Alert, settings: AlertSettings) -> object:
    mentioned = alert if alert.mentions else alert.model_copy(
        update={"mentions": audience(alert, settings.contacts).mentions})
    return send_slack(mentioned, settings, settings.routing_for_alert(alert).slack_channel)


def _email(alert: Alert, settings: AlertSettings) -> object:
    send_email(alert, settings, settings.routing_for_alert(alert).email_to)
    return None


SENDERS: Mapping[Channel, Sender] = {
    Channel.SLACK: _slack,
    Channel.EMAIL: _email,
    Channel.PAGERDUTY: send_pagerduty,
}


@dataclass
class Published:
    """What publishing one alert did."""

    enqueued: bool
    """False when it duplicated an open alert (trigger) or closed nothing (resolve)."""
    incident: Incident | None = None


@dataclass
class FlushResult:
    delivered: list[tuple[str, Channel]] = field(default_factory=list)
    failed: list[tuple[str, Channel, str]] = field(default_factory=list)
    waiting: int = 0
    """Entries still in the outbox after this flush."""
    no_channel: bool = False
    """No channel is configured at all: alerts wait until one is."""


def claim_lease_s(settings: AlertSettings) -> float:
    """How long a claim on one channel of one entry lasts: longer than the slowest send
    (every attempt's connect, TLS and request at ``timeout_s``, and the capped backoff
    between attempts), so a claim ends early only when its holder died."""
    return settings.max_attempts * (3 * settings.timeout_s + settings.max_backoff_s) + 30


def _kind_of(incident: Incident) -> AlertKind:
    return {Category.PRODUCTION_DOWN: AlertKind.PRODUCTION_DOWN,
            Category.SECURITY_VULNERABILITY: AlertKind.SECURITY_INCIDENT,
            Category.DATA_BREACH: AlertKind.SECURITY_INCIDENT}.get(
        incident.category, AlertKind.DEPLOYMENT_FAILURE)


def _delivered(entry: OutboxEntry) -> str:
    return ", ".join(c.value for c in entry.deliveries if entry.delivered(c)) or "not yet"


def _recipient(channel: Channel, routing: ServiceRouting, settings: AlertSettings) -> str:
    if channel is Channel.SLACK:
        return f"slack {routing.slack_channel or settings.slack_channel}"
    if channel is Channel.EMAIL:
        return f"email {', '.join(routing.email_to or settings.smtp_to)}"
    return "pagerduty"


class Notifier:
    """Alerts and incidents of one state store (or of a state directory's default store).

    Nothing here sends while a transaction or row lock is held: publishing is one short
    transaction; delivery claims, sends outside, then records (:mod:`runbook.alerts.outbox`).
    """

    def __init__(self, state: StateStore | Path, settings: AlertSettings,
                 senders: Mapping[Channel, Sender] = SENDERS) -> None:
        self.settings = settings
        self.store = as_store(state)
        self.outbox = Outbox(self.store)
        self.incidents = IncidentStore(self.store)
        self.senders = senders
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def publish(self, alert: Alert) -> Published:
        """Record the alert (nothing is sent yet; :meth:`flush` sends).

        A trigger whose dedup key is already open is a duplicate and is dropped; an
        acknowledge or a resolve is sent only when its key is open. Triggers open an
        incident, resolves resolve it; acknowledging the record is the caller's
        (:meth:`acknowledge_incident`). The open alert, the incident and the outbox entry
        are written in one transaction, under the open alert's row lock.
        """
        with self.store.transaction() as tx:
            open_alerts = self.outbox.open.within(tx)
            incidents = self.incidents.within(tx)
            key = alert.dedup_key
            if alert.action is AlertAction.TRIGGER:
                if not open_alerts.insert(key, alert):
                    return Published(enqueued=False, incident=incidents.open_for(key))
                incident = incidents.open_for(key, lock=True) or open_incident(
                    alert, now_utc(), self.settings.contacts.response)
            else:
                if open_alerts.get(key, lock=True) is None:
                    return Published(enqueued=False)
                incident = incidents.open_for(key, lock=True)
                if alert.action is AlertAction.RESOLVE:
                    open_alerts.delete(key)
                    for other in escalation_keys(key, open_alerts.keys(f"{key}/")):
                        # The next contacts' pages end with the incident they were about.
                        page = open_alerts.get(other, lock=True)
                        if page is not None:
                            open_alerts.delete(other)
                            self.outbox.add(page.resolution(), tx)
                    if incident is not None:
                        incident = resolve(incident, now_utc(), alert.summary)
            self.outbox.add(alert, tx)
            if incident is not None and alert.action is not AlertAction.ACKNOWLEDGE:
                incidents.save(incident)
            return Published(enqueued=True, incident=incident)

    def acknowledge_incident(self, incident_id: str, by: str) -> Published:
        """Acknowledge an incident: the record (who, when; its response clock stops) and, the
        first time, its open alert on the alert's channels (PagerDuty ``acknowledge`` with the
        same dedup key, a Slack note). Delivery is :meth:`flush`'s, through the outbox.

        Raises:
            ConfigurationError: no such incident, or it is resolved already.
        """
        before, acknowledged = self.incidents.change(
            incident_id, lambda incident: acknowledge(incident, now_utc(), by))
        if before.status is IncidentStatus.ACKNOWLEDGED:
            return Published(enqueued=False, incident=acknowledged)  # told the channels once
        alert = self.outbox.open.get(before.dedup_key)
        enqueued = alert is not None and self.publish(alert.acknowledgement(by)).enqueued
        open_alerts = self.outbox.open_alerts()
        for key in escalation_keys(before.dedup_key, list(open_alerts)):
            self.publish(open_alerts[key].acknowledgement(by))
        return Published(enqueued=enqueued, incident=acknowledged)

    def escalate_overdue(self, now: datetime) -> list[Incident]:
        """Page the next contacts of every incident past its response deadline without an
        acknowledgement (:func:`~runbook.alerts.routing.due_escalation`); each escalation
        alert goes through the outbox (delivered by :meth:`flush`) and stays open until the
        incident is acknowledged or resolved. Returns the incidents escalated now.

        In one transaction holding the incidents' row locks, so two escalation runs never
        page the same level twice."""
        escalated = []
        contacts = self.settings.contacts
        with self.store.transaction() as tx:
            open_alerts = self.outbox.open.within(tx)
            incidents = self.incidents.within(tx)
            for listed in incidents.all():
                if not listed.is_open:
                    continue
                incident = incidents.open_for(listed.dedup_key, lock=True)
                plan = due_escalation(incident, contacts, now) if incident else None
                if incident is None or plan is None:
                    continue
                channels: set[str] = set()
                for contact in plan.contacts:
                    alert = escalation_alert(incident, plan, contact)
                    if not open_alerts.insert(alert.dedup_key, alert):
                        continue  # paged already
                    self.outbox.add(alert, tx)
                    plan_route = route(alert, self.settings.routing_for_alert(alert),
                                       self.settings.configured())
                    channels.update(channel.value for channel in plan_route.channels)
                incident = record_escalation(incident, Escalation(
                    level=plan.level, at=now, to=[c.name for c in plan.contacts],
                    channels=sorted(channels)))
                incidents.save(incident)
                escalated.append(incident)
        return escalated

    def resolve_incident(self, incident_id: str, note: str) -> Published:
        """Resolve an incident by hand: its open alert is resolved too (Slack, PagerDuty with
        the same dedup key), or, when no alert is open any more, just the record.

        Raises:
            ConfigurationError: no such incident, or it is resolved already.
        """
        incident = self.incidents.get(incident_id)
        if not incident.is_open:
            raise ConfigurationError(f"{incident_id} is resolved already")
        alert = self.outbox.open.get(incident.dedup_key)
        if alert is not None:
            published = self.publish(alert.resolution(f"resolved: {note}"))
            if published.incident is not None and published.incident.id == incident_id:
                return published
        _, resolved = self.incidents.change(
            incident_id, lambda current: _resolved(current, note))
        return Published(enqueued=False, incident=resolved)

    def communicate(self, incident_id: str, by: str, message: str) -> Incident:
        """Step 3: a status update of the incident to its alert's channels (the team's
        Slack channel, the security team's for a security incident, email recipients),
        through the outbox; the record says what was sent and to whom."""
        incident = self.incidents.get(incident_id)
        update = Alert(
            kind=_kind_of(incident), severity=Severity.WARNING, service=incident.service,
            environment=incident.environment, link=incident.link,
            summary=f"update on {incident.id} ({incident.priority.value}): {message}"[:1000],
            dedup_key=f"{incident.dedup_key}/update-{len(incident.timeline)}"[:255])
        routing = self.settings.routing_for_alert(update)
        plan = route(update, routing, self.settings.configured())
        recipients = [_recipient(channel, routing, self.settings) for channel in plan.channels]
        if not recipients:
            raise ConfigurationError(
                "communicate: no alert channel is configured",
                hint="set RUNBOOK_ALERT_SLACK_TOKEN or RUNBOOK_ALERT_SMTP_HOST",
                reference="README.md#on-call-and-contacts")
        with self.store.transaction() as tx:
            self.outbox.add(update, tx)
            _, incident = self.incidents.within(tx).change(
                incident_id, lambda current: communicate(current, now_utc(), by, message,
                                                         recipients))
        return incident

    def alert_records(self, incident: Incident) -> list[TimelineEntry]:
        """The incident's alerts as timeline lines: the trigger, its acknowledgements,
        escalations, updates and resolution, with where each was delivered."""
        entries = [e for e in [*self.outbox.done(), *self.outbox.pending()]
                   if e.alert.dedup_key == incident.dedup_key
                   or e.alert.dedup_key.startswith(f"{incident.dedup_key}/")]
        return [TimelineEntry(at=entry.enqueued_at, source="alert",
                              text=f"{entry.alert.action.value} {entry.alert.summary} "
                                   f"(delivered: {_delivered(entry)})") for entry in entries]

    def open_alerts(self, service: str, environment: str) -> list[Alert]:
        """Alerts of one service and environment that are triggered and not resolved."""
        return [a for a in self.outbox.open_alerts().values()
                if a.service == service and a.environment == environment]

    def flush(self) -> FlushResult:
        """Try every waiting alert on each channel it still needs, oldest first.

        A channel that took an entry is recorded at once and never tried again for it. An
        entry leaves the outbox when all its channels took it. When a channel fails, the
        fallback channel (email) carries the alert meanwhile. An entry another flusher is
        sending right now is left to it.
        """
        result = FlushResult(no_channel=not self.settings.configured())
        # (dedup key, channel) pairs not delivered this pass: a later entry with the same
        # key must not overtake it on that channel (a resolve before its trigger).
        blocked: set[tuple[str, Channel]] = set()
        for entry in self.outbox.pending():
            channels = self._deliver(entry, blocked, result)
            if channels is None or not self.outbox.complete(entry.id, channels):
                result.waiting += 1
        self.outbox.prune_sent()
        return result

    def _deliver(self, entry: OutboxEntry, blocked: set[tuple[str, Channel]],
                 result: FlushResult) -> list[Channel] | None:
        """Attempt the entry's channels; returns the channels it needs when each of them
        took it, None while one still owes it (so a waiting entry costs no transaction)."""
        alert = entry.alert
        plan = route(alert, self.settings.routing_for_alert(alert), self.settings.configured())
        any_failed = owed = False
        for channel in plan.channels:
            if entry.delivered(channel):
                continue
            if (alert.dedup_key, channel) in blocked:
                any_failed = owed = True
                continue
            attempt = self._attempt(entry, channel, result)
            if attempt is not Attempt.DELIVERED:
                blocked.add((alert.dedup_key, channel))
                any_failed = any_failed or attempt is Attempt.FAILED
                owed = True
        fallback = plan.fallback
        if any_failed and fallback is not None and not entry.delivered(fallback):
            self._attempt(entry, fallback, result)
        return None if owed or not plan.channels else list(plan.channels)

    def _attempt(self, entry: OutboxEntry, channel: Channel, result: FlushResult) -> Attempt:
        claim = self.outbox.claim(entry.id, channel, self.owner, claim_lease_s(self.settings))
        if claim is Claim.DELIVERED:
            return Attempt.DELIVERED
        if claim is not Claim.CLAIMED:
            return Attempt.ELSEWHERE
        try:  # no lock held: the claim keeps other flushers off this channel meanwhile
            self.senders[channel](entry.alert, self.settings)
        except DeliveryFailed as exc:
            self.outbox.record(entry.id, channel, str(exc))
            result.failed.append((entry.id, channel, str(exc)))
            log.warning("alert %s not delivered to %s: %s", entry.alert.dedup_key, channel, exc)
            return Attempt.FAILED
        except Exception as exc:
            # A sender's bug must not leave the claim to time out nor stop other alerts.
            error = f"{type(exc).__name__} in the {channel.value} sender"
            self.outbox.record(entry.id, channel, error)
            result.failed.append((entry.id, channel, error))
            log.exception("alert %s: %s", entry.alert.dedup_key, error)
            return Attempt.FAILED
        self.outbox.record(entry.id, channel, None)  # recorded before anything else can fail
        result.delivered.append((entry.id, channel))
        return Attempt.DELIVERED


def notifier_for(settings: AlertSettings, stack: StackSettings,
                 state_config: StateConfig | None = None) -> Notifier:
    """The notifier on the state store in force: ``runbook.yaml``'s ``state`` when given,
    else SQLite in ``RUNBOOK_ALERT_STATE_DIR`` or the stack's state directory."""
    if settings.state_dir is not None:
        stack = stack.model_copy(update={"state_dir": settings.state_dir})
    return Notifier(store_for(stack, state_config), settings)


class Attempt(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    ELSEWHERE = "elsewhere"  # another flusher holds it, or the entry left the outbox


def _resolved(incident: Incident, note: str) -> Incident:
    if not incident.is_open:
        raise ConfigurationError(f"{incident.id} is resolved already")
    return resolve(incident, now_utc(), note)
