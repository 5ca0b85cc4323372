"""Pure routing: which channels an alert goes to. No I/O."""

from __future__ import annotations

from pydantic import BaseModel

from runbook.alerts.models import Alert, Channel, Severity
from runbook.alerts.settings import ServiceRouting


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
