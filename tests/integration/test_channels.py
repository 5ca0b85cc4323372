"""Each channel against a local server speaking its protocol: aiosmtpd for SMTP, an HTTP
server playing Slack's ``chat.postMessage`` and PagerDuty's ``/v2/enqueue``."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from runbook.alerts.errors import DeliveryFailed
from runbook.alerts.models import AlertKind, Channel, make_alert
from runbook.alerts.notifier import Notifier
from runbook.alerts.pagerduty import send_pagerduty
from runbook.alerts.settings import AlertSettings
from runbook.alerts.slack import send_slack

SLACK_PATH = "/api/chat.postMessage"
PD_PATH = "/v2/enqueue"
ALERT = make_alert(AlertKind.ROLLBACK, "agent-api", "production", "release rolled back",
                   details="error rate 30 % > 5 %", link="http://127.0.0.1:4200/runs/x")


class Recorder:
    """A scripted endpoint: answers from a list of (status, headers) in turn, then 'ok', and
    records when each request came and its JSON body."""

    def __init__(self, ok: tuple[int, dict[str, object]], script: list[tuple[int, dict]]) -> None:
        self.ok = ok
        self.script = list(script)
        self.calls: list[tuple[float, dict]] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append((time.monotonic(), json.loads(request.get_data() or b"{}")))
        status, headers = self.script.pop(0) if self.script else (self.ok[0], {})
        body = self.ok[1] if status == self.ok[0] else {"ok": False, "error": "scripted",
                                                        "status": "invalid event"}
        return Response(json.dumps(body), status=status, headers=headers,
                        content_type="application/json")

    def gap(self, first: int, second: int) -> float:
        return self.calls[second][0] - self.calls[first][0]


def slack(server: HTTPServer, *script: tuple[int, dict]) -> Recorder:
    recorder = Recorder((200, {"ok": True, "ts": "1700000000.000100"}), list(script))
    server.expect_request(SLACK_PATH, method="POST").respond_with_handler(recorder)
    return recorder


def pagerduty(server: HTTPServer, *script: tuple[int, dict]) -> Recorder:
    recorder = Recorder((202, {"status": "success", "dedup_key": ALERT.dedup_key}), list(script))
    server.expect_request(PD_PATH, method="POST").respond_with_handler(recorder)
    return recorder


def settings_for(server: HTTPServer | None = None, smtp_port: int | None = None,
                 **changes: object) -> AlertSettings:
    dead = f"http://127.0.0.1:{_closed_port()}"
    base = server.url_for("").rstrip("/") if server else dead
    values: dict[str, object] = {
        "slack_token": "xoxb-test", "slack_base_url": f"{base}/api/",
        "pagerduty_routing_key": "R0UTINGKEY", "pagerduty_events_url": f"{base}{PD_PATH}",
        "smtp_host": "127.0.0.1", "smtp_port": smtp_port or _closed_port(),
        "smtp_to": "devops@example.com", "smtp_starttls": False,
        "timeout_s": 5, "max_attempts": 3, "backoff_s": 0.05, "max_backoff_s": 3,
    }
    values.update(changes)
    return AlertSettings(**values)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = _closed_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


# -- Slack -------------------------------------------------------------------------------


def test_slack_honours_retry_after_on_429(httpserver: HTTPServer) -> None:
    recorder = slack(httpserver, (429, {"Retry-After": "1"}))
    assert send_slack(ALERT, settings_for(httpserver)) == "1700000000.000100"
    assert len(recorder.calls) == 2
    assert recorder.gap(0, 1) >= 1.0
    body = recorder.calls[1][1]
    assert body["channel"] == "#devops-alerts"
    assert body["blocks"][0]["type"] == "header" and "agent-api/production" in body["text"]


def test_slack_retries_a_500(httpserver: HTTPServer) -> None:
    recorder = slack(httpserver, (500, {}))
    send_slack(ALERT, settings_for(httpserver))
    assert len(recorder.calls) == 2


def test_slack_does_not_retry_a_400(httpserver: HTTPServer) -> None:
    recorder = slack(httpserver, (400, {}))
    with pytest.raises(DeliveryFailed) as failure:
        send_slack(ALERT, settings_for(httpserver))
    assert not failure.value.transient
    assert len(recorder.calls) == 1


# -- PagerDuty ---------------------------------------------------------------------------


def test_pagerduty_honours_retry_after_on_429(httpserver: HTTPServer) -> None:
    recorder = pagerduty(httpserver, (429, {"Retry-After": "1"}))
    assert send_pagerduty(ALERT, settings_for(httpserver)) == ALERT.dedup_key
    assert len(recorder.calls) == 2
    assert recorder.gap(0, 1) >= 1.0


def test_pagerduty_retries_a_500_and_does_not_retry_a_400(httpserver: HTTPServer) -> None:
    recorder = pagerduty(httpserver, (500, {}), (400, {}))
    with pytest.raises(DeliveryFailed) as failure:
        send_pagerduty(ALERT, settings_for(httpserver))
    assert not failure.value.transient
    assert len(recorder.calls) == 2  # the 500, then the 400, and nothing after it


def test_pagerduty_gives_up_after_max_attempts_of_5xx(httpserver: HTTPServer) -> None:
    recorder = pagerduty(httpserver, *[(503, {})] * 5)
    with pytest.raises(DeliveryFailed) as failure:
        send_pagerduty(ALERT, settings_for(httpserver))
    assert failure.value.transient
    assert len(recorder.calls) == 3


def test_pagerduty_resolves_with_the_trigger_dedup_key(httpserver: HTTPServer) -> None:
    recorder = pagerduty(httpserver)
    settings = settings_for(httpserver)
    send_pagerduty(ALERT, settings)
    send_pagerduty(ALERT.resolution(), settings)
    trigger, resolve = (body for _, body in recorder.calls)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == ALERT.dedup_key
    assert trigger["routing_key"] == "R0UTINGKEY"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] and trigger["payload"]["summary"]


# -- Email -------------------------------------------------------------------------------


def test_email_reaches_the_smtp_server_as_plain_and_html(smtp: tuple[Mailbox, int]) -> None:
    from runbook.alerts.email import send_email

    mailbox, port = smtp
    send_email(ALERT, settings_for(smtp_port=port), extra_to=["owner@example.com"])
    assert len(mailbox.messages) == 1
    message = message_from_bytes(mailbox.messages[0])
    assert "agent-api/production" in message["Subject"]
    assert message["To"] == "devops@example.com, owner@example.com"
    types = [part.get_content_type() for part in message.walk()]
    assert types == ["multipart/alternative", "text/plain", "text/html"]


# -- The outbox --------------------------------------------------------------------------


def test_all_channels_down_the_alert_waits_then_is_delivered_exactly_once(
    tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, smtp_port = smtp
    down = Notifier(tmp_path, settings_for(max_attempts=1))
    assert down.publish(ALERT).enqueued
    first = down.flush()
    assert first.waiting == 1 and first.delivered == []
    assert {channel for _, channel, _ in first.failed} == {Channel.SLACK, Channel.PAGERDUTY,
                                                           Channel.EMAIL}
    assert len(down.outbox.pending()) == 1

    slack_calls, pd_calls = slack(httpserver), pagerduty(httpserver)
    up = Notifier(tmp_path, settings_for(httpserver, smtp_port=smtp_port))
    second = up.flush()
    assert second.waiting == 0
    assert sorted(channel for _, channel in second.delivered) == [Channel.PAGERDUTY,
                                                                  Channel.SLACK]
    assert up.flush().delivered == []  # nothing left, nothing sent twice
    assert len(slack_calls.calls) == 1 and len(pd_calls.calls) == 1
    assert mailbox.messages == []  # email is the fallback; Slack took it
    (done,) = up.outbox.done()
    assert done.deliveries[Channel.SLACK].attempts == 2
    assert done.deliveries[Channel.SLACK].delivered_at is not None


def test_a_failing_channel_falls_back_to_email_and_keeps_waiting(
    tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, smtp_port = smtp
    slack(httpserver, *[(503, {})] * 2)
    pd_calls = pagerduty(httpserver)
    notifier = Notifier(tmp_path, settings_for(httpserver, smtp_port=smtp_port,
                                                max_attempts=1))
    notifier.publish(ALERT)
    result = notifier.flush()
    assert result.waiting == 1  # Slack still owes it
    assert len(mailbox.messages) == 1 and len(pd_calls.calls) == 1
    notifier.flush()
    notifier.flush()  # Slack answers after its two 503s
    assert len(mailbox.messages) == 1 and len(pd_calls.calls) == 1
    assert notifier.outbox.pending() == []


def test_no_channel_configured_keeps_the_alert(tmp_path: Path) -> None:
    notifier = Notifier(tmp_path, AlertSettings(_env_file=None))
    notifier.publish(ALERT)
    result = notifier.flush()
    assert result.no_channel and result.waiting == 1
