"""Publishing an alert: deduplicate it, open or resolve its incident, put it in the outbox,
then deliver what the outbox holds. The one entry point the pipeline, the emergency flows,
the Alertmanager receiver and the CLI share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runbook.alerts.email import send_email
from runbook.alerts.errors import DeliveryFailed
from runbook.alerts.models import Alert, AlertAction, Channel
from runbook.alerts.outbox import Outbox, OutboxEntry
from runbook.alerts.pagerduty import send_pagerduty
from runbook.alerts.routing import route
from runbook.alerts.settings import AlertSettings
from runbook.alerts.slack import send_slack
from runbook.errors import ConfigurationError
from runbook.incidents import (
    Incident,
    IncidentStatus,
    IncidentStore,
    acknowledge,
    now_utc,
    open_incident,
    resolve,
)

log = logging.getLogger(__name__)

Sender = Callable[[Alert, AlertSettings], object]


def _slack(alert: Alert, settings: AlertSettings) -> object:
    return send_slack(alert, settings, settings.routing_for_alert(alert).slack_channel)


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


class Notifier:
    """Alerts and incidents of one state directory."""

    def __init__(self, state_dir: Path, settings: AlertSettings,
                 senders: Mapping[Channel, Sender] = SENDERS) -> None:
        self.settings = settings
        self.outbox = Outbox(state_dir)
        self.incidents = IncidentStore(state_dir)
        self.senders = senders

    def publish(self, alert: Alert) -> Published:
        """Record the alert (nothing is sent yet; :meth:`flush` sends).

        A trigger whose dedup key is already open is a duplicate and is dropped; an
        acknowledge or a resolve is sent only when its key is open. Triggers open an
        incident, resolves resolve it; acknowledging the record is the caller's
        (:meth:`acknowledge_incident`).
        """
        with self.outbox.locked():
            open_alerts = self.outbox.open_alerts()
            if alert.action is AlertAction.ACKNOWLEDGE:
                if alert.dedup_key not in open_alerts:
                    return Published(enqueued=False)
                self.outbox.add(alert)
                return Published(enqueued=True,
                                 incident=self.incidents.open_for(alert.dedup_key))
            if alert.action is AlertAction.TRIGGER:
                if alert.dedup_key in open_alerts:
                    return Published(enqueued=False,
                                     incident=self.incidents.open_for(alert.dedup_key))
                open_alerts[alert.dedup_key] = alert
                incident = self.incidents.open_for(alert.dedup_key) or open_incident(
                    alert, now_utc())
            else:
                if open_alerts.pop(alert.dedup_key, None) is None:
                    return Published(enqueued=False)
                incident = self.incidents.open_for(alert.dedup_key)
                if incident is not None:
                    incident = resolve(incident, now_utc(), alert.summary)
            self.outbox.add(alert)
            self.outbox.save_open_alerts(open_alerts)
            if incident is not None:
                self.incidents.save(incident)
            return Published(enqueued=True, incident=incident)

    def acknowledge_incident(self, incident_id: str, by: str) -> Published:
        """Acknowledge an incident: the record (who, when; its response clock stops) and, the
        first time, its open alert on the alert's channels (PagerDuty ``acknowledge`` with the
        same dedup key, a Slack note). Delivery is :meth:`flush`'s, through the outbox.

        Raises:
            ConfigurationError: no such incident, or it is resolved already.
        """
        incident = self.incidents.get(incident_id)
        acknowledged = acknowledge(incident, now_utc(), by)
        self.incidents.save(acknowledged)
        if incident.status is IncidentStatus.ACKNOWLEDGED:
            return Published(enqueued=False, incident=acknowledged)  # told the channels once
        alert = self.outbox.open_alerts().get(incident.dedup_key)
        enqueued = alert is not None and self.publish(alert.acknowledgement(by)).enqueued
        return Published(enqueued=enqueued, incident=acknowledged)

    def resolve_incident(self, incident_id: str, note: str) -> Published:
        """Resolve an incident by hand: its open alert is resolved too (Slack, PagerDuty with
        the same dedup key), or, when no alert is open any more, just the record.

        Raises:
            ConfigurationError: no such incident, or it is resolved already.
        """
        incident = self.incidents.get(incident_id)
        if not incident.is_open:
            raise ConfigurationError(f"{incident_id} is resolved already")
        alert = self.outbox.open_alerts().get(incident.dedup_key)
        if alert is not None:
            published = self.publish(alert.resolution(f"resolved: {note}"))
            if published.incident is not None and published.incident.id == incident_id:
                return published
        resolved = resolve(self.incidents.get(incident_id), now_utc(), note)
        self.incidents.save(resolved)
        return Published(enqueued=False, incident=resolved)

    def open_alerts(self, service: str, environment: str) -> list[Alert]:
        """Alerts of one service and environment that are triggered and not resolved."""
        return [a for a in self.outbox.open_alerts().values()
                if a.service == service and a.environment == environment]

    def flush(self) -> FlushResult:
        """Try every waiting alert on each channel it still needs, oldest first.

        A channel that took an entry is recorded at once and never tried again for it. An
        entry leaves the outbox when all its channels took it. When a channel fails, the
        fallback channel (email) carries the alert meanwhile.
        """
        result = FlushResult(no_channel=not self.settings.configured())
        with self.outbox.locked():
            # (dedup key, channel) pairs that failed this pass: a later entry with the same
            # key must not overtake it on that channel (a resolve before its trigger).
            blocked: set[tuple[str, Channel]] = set()
            for entry in self.outbox.pending():
                if self._deliver(entry, blocked, result):
                    self.outbox.complete(entry)
                else:
                    result.waiting += 1
        return result

    def _deliver(self, entry: OutboxEntry, blocked: set[tuple[str, Channel]],
                 result: FlushResult) -> bool:
        alert = entry.alert
        plan = route(alert, self.settings.routing_for_alert(alert), self.settings.configured())
        any_failed = False
        for channel in plan.channels:
            if entry.delivered(channel):
                continue
            if (alert.dedup_key, channel) in blocked:
                any_failed = True
                continue
            if not self._attempt(entry, channel, result):
                blocked.add((alert.dedup_key, channel))
                any_failed = True
        fallback = plan.fallback
        if any_failed and fallback is not None and not entry.delivered(fallback):
            self._attempt(entry, fallback, result)
        return bool(plan.channels) and all(entry.delivered(c) for c in plan.channels)

    def _attempt(self, entry: OutboxEntry, channel: Channel, result: FlushResult) -> bool:
        try:
            self.senders[channel](entry.alert, self.settings)
        except DeliveryFailed as exc:
            entry.record(channel, str(exc))
            self.outbox.save(entry)
            result.failed.append((entry.id, channel, str(exc)))
            log.warning("alert %s not delivered to %s: %s", entry.alert.dedup_key, channel, exc)
            return False
        entry.record(channel, None)
        self.outbox.save(entry)  # recorded before anything else can fail: never sent twice
        result.delivered.append((entry.id, channel))
        return True
