"""PagerDuty adapter: Events API v2. Trigger with the alert's dedup key, resolve with the same.

429 and 5xx are retried with backoff (``Retry-After`` honoured, capped); 400 means the event
itself is wrong and is never retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from runbook.alerts.errors import DeliveryFailed
from runbook.alerts.models import Alert, AlertAction
from runbook.alerts.settings import AlertSettings

ACCEPTED = 202
SOURCE = "runbook"


def event(alert: Alert, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for the alert (trigger or resolve)."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": alert.action.value,
        "dedup_key": alert.dedup_key,
    }
    if alert.action is AlertAction.TRIGGER:
        body["payload"] = {
            "summary": f"{alert.service}/{alert.environment}: {alert.summary}"[:1024],
            "source": f"{SOURCE}/{alert.service}/{alert.environment}",
            "severity": alert.severity.value,
            "component": alert.service,
            "group": alert.environment,
            "class": alert.kind.value,
            "custom_details": {"details": alert.details},
        }
        if alert.link:
            body["links"] = [{"href": alert.link, "text": "Prefect run"}]
    return body


def send_pagerduty(
    alert: Alert, settings: AlertSettings, sleep: Callable[[float], None] = time.sleep
) -> str:
    """Enqueue the event; returns the dedup key PagerDuty acknowledged.

    Raises:
        DeliveryFailed: permanent for 4xx other than 429; transient when attempts run out.
    """
    key = settings.pagerduty_key_for(alert)
    if key is None:
        raise DeliveryFailed("pagerduty", "no routing key configured", transient=False)
    body = event(alert, key.get_secret_value())
    last = "no attempt"
    with httpx.Client(timeout=settings.timeout_s) as http:
        for attempt in range(settings.max_attempts):
            try:
                response = http.post(settings.pagerduty_events_url, json=body)
            except httpx.HTTPError as exc:
                last = f"unreachable: {type(exc).__name__}"
                wait = backoff(attempt, settings)
            else:
                if response.status_code == ACCEPTED:
                    return str(response.json().get("dedup_key", alert.dedup_key))
                last = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    raise DeliveryFailed("pagerduty", f"{last} {_message(response)}",
                                         transient=False)
                wait = retry_after(response, settings) or backoff(attempt, settings)
            if attempt + 1 < settings.max_attempts:
                sleep(min(wait, settings.max_backoff_s))
    raise DeliveryFailed("pagerduty", f"{last} after {settings.max_attempts} attempt(s)",
                         transient=True)


def backoff(attempt: int, settings: AlertSettings) -> float:
    return float(min(settings.backoff_s * 2**attempt, settings.max_backoff_s))


def retry_after(response: httpx.Response, settings: AlertSettings) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), capped."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, settings.max_backoff_s))


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", ""))[:200] + " " + "; ".join(map(str, data.get("errors", [])))
