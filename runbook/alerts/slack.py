"""Slack adapter: one ``chat.postMessage`` per alert, as Block Kit, through slack-sdk."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from runbook.alerts.errors import DeliveryFailed
from runbook.alerts.models import Alert, AlertAction, Severity, state_label
from runbook.alerts.settings import AlertSettings

ICONS = {Severity.CRITICAL: ":rotating_light:", Severity.WARNING: ":warning:"}
RESOLVED_ICON = ":white_check_mark:"
ACKNOWLEDGED_ICON = ":eyes:"


class CappedRateLimitHandler(RateLimitErrorRetryHandler):
    """slack-sdk's 429 handler sleeps whatever ``Retry-After`` says, however long; this one
    waits at most ``max_wait_s`` (``max_backoff_s``), so a delivery always ends within
    ``max_attempts * (timeout_s + max_backoff_s)``."""

    def __init__(self, max_retry_count: int, max_wait_s: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s
        self._sleep = sleep

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None,
                                 error: Exception | None = None) -> None:
        if response is None:
            raise error or RuntimeError("rate limited without a response")
        state.next_attempt_requested = True
        self._sleep(min(retry_after_s(response.headers), self.max_wait_s))
        state.increment_current_attempt()


def retry_after_s(headers: dict[str, list[str]]) -> float:
    """Seconds a ``Retry-After`` header asks for (1 s when absent or unreadable)."""
    for name, values in headers.items():
        if name.lower() == "retry-after" and values:
            try:
                return max(0.0, float(values[0]))
            except ValueError:
                return 1.0
    return 1.0


def slack_client(settings: AlertSettings) -> WebClient:
    """A WebClient that honours 429 Retry-After (capped) and retries 5xx and connection
    errors.

    slack-sdk retries only connection errors by default; rate limits and server errors are
    opt-in handlers.
    """
    retries = settings.max_attempts - 1
    token = settings.slack_token.get_secret_value() if settings.slack_token else None
    return WebClient(
        token=token,
        base_url=settings.slack_base_url,
        timeout=int(max(1, settings.timeout_s)),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=retries),
            CappedRateLimitHandler(retries, settings.max_backoff_s),
            ServerErrorRetryHandler(max_retry_count=retries),
        ],
    )


def send_slack(alert: Alert, settings: AlertSettings, channel: str | None = None) -> str:
    """Post the alert; returns the message timestamp Slack gave it.

    Raises:
        DeliveryFailed: Slack refused (transient for 429/5xx/unreachable after the client's
            own retries, permanent for anything else such as 400 or ``invalid_auth``).
    """
    try:
        response = slack_client(settings).chat_postMessage(
            channel=channel or settings.slack_channel, text=_text(alert), blocks=blocks(alert)
        )
    except SlackApiError as exc:
        status = exc.response.status_code
        error = exc.response.get("error", "") if isinstance(exc.response.data, dict) else ""
        raise DeliveryFailed("slack", f"HTTP {status} {error}".strip(),
                             transient=status == 429 or status >= 500) from exc
    except (URLError, OSError) as exc:
        raise DeliveryFailed("slack", f"unreachable: {exc}", transient=True) from exc
    return str(response.get("ts", ""))


def _text(alert: Alert) -> str:
    """The notification text (also what screen readers and push notifications show)."""
    return f"[{state_label(alert)}] {alert.service}/{alert.environment}: {alert.summary}"


def blocks(alert: Alert) -> list[dict[str, Any]]:
    """Block Kit layout: header, summary, fields, and a link to the run."""
    icon = {AlertAction.RESOLVE: RESOLVED_ICON, AlertAction.ACKNOWLEDGE: ACKNOWLEDGED_ICON}.get(
        alert.action, ICONS[alert.severity])
    fields = [
        ("Service", alert.service), ("Environment", alert.environment),
        ("Severity", alert.severity.value), ("Kind", alert.kind.value),
    ]
    result: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{_text(alert)}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {alert.summary}"[:3000]},
         "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields]},
    ]
    if alert.details:
        result.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": f"```{alert.details[:2900]}```"}})
    context = f"dedup key `{alert.dedup_key}`"
    if alert.link:
        context += f" · <{alert.link}|Prefect run>"
    result.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return result
