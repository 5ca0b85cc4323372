"""The email channel's STARTTLS for real: aiosmtpd requires STARTTLS with a certificate from a
throwaway CA (trustme, in memory); the channel verifies it against the CA bundle setting."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from runbook.alerts.errors import DeliveryFailed
from runbook.alerts.models import AlertKind, Channel, make_alert
from runbook.alerts.notifier import Notifier
from runbook.alerts.settings import AlertSettings

HOST = "127.0.0.1"
ALERT = make_alert(AlertKind.DEPLOYMENT_FAILURE, "agent-api", "production", "deploy failed",
                   details="rollout of agent-api-green failed")


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        self.tls.append(session.ssl is not None)  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_smtp(ca: trustme.CA) -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server that refuses mail until the client has issued STARTTLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname=HOST, port=port, tls_context=context,
                            require_starttls=True)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def email_only(port: int, ca_file: Path | None, starttls: bool) -> AlertSettings:
    """Only the email channel configured, so it is the one channel the alert needs."""
    return AlertSettings(
        _env_file=None, smtp_host=HOST, smtp_port=port, smtp_to="devops@example.com",  # type: ignore[arg-type]
        smtp_starttls=starttls, smtp_ca_file=ca_file, timeout_s=5, max_attempts=1,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def test_starttls_with_the_trusted_ca_delivers_encrypted(
    tmp_path: Path, ca: trustme.CA, tls_smtp: tuple[Mailbox, int]
) -> None:
    from runbook.alerts.email import send_email

    mailbox, port = tls_smtp
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    send_email(ALERT, email_only(port, bundle, starttls=True))

    assert mailbox.tls == [True]
    assert "agent-api/production" in message_from_bytes(mailbox.messages[0])["Subject"]


def test_starttls_refuses_a_certificate_from_an_untrusted_ca(
    tmp_path: Path, tls_smtp: tuple[Mailbox, int]
) -> None:
    from runbook.alerts.email import send_email

    mailbox, port = tls_smtp
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))

    with pytest.raises(DeliveryFailed, match="CERTIFICATE_VERIFY_FAILED"):
        send_email(ALERT, email_only(port, other, starttls=True))
    assert mailbox.messages == []


def test_without_starttls_the_server_refuses_and_the_alert_waits_in_the_outbox(
    tmp_path: Path, ca: trustme.CA, tls_smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = tls_smtp
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    plain = Notifier(tmp_path / "state", email_only(port, bundle, starttls=False))
    plain.publish(ALERT)

    refused = plain.flush()

    assert refused.waiting == 1 and mailbox.messages == []
    ((_, channel, error),) = refused.failed
    assert channel is Channel.EMAIL and "SMTP 530" in error
    (entry,) = plain.outbox.pending()
    assert entry.deliveries[Channel.EMAIL].delivered_at is None

    encrypted = Notifier(tmp_path / "state", email_only(port, bundle, starttls=True))
    delivered = encrypted.flush()

    assert delivered.waiting == 0 and [c for _, c in delivered.delivered] == [Channel.EMAIL]
    assert mailbox.tls == [True]
    assert encrypted.flush().delivered == []  # delivered exactly once
