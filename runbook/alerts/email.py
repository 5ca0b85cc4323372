"""Email adapter: the fallback channel, over SMTP (STARTTLS optional), plain text + HTML."""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage

from runbook.alerts.errors import DeliveryFailed
from runbook.alerts.models import Alert, state_label
from runbook.alerts.settings import AlertSettings


def send_email(alert: Alert, settings: AlertSettings, extra_to: list[str] | None = None) -> None:
    """Send the alert to the team (and the service's own recipients).

    Raises:
        DeliveryFailed: transient for connection faults and 4xx SMTP replies, permanent for
            5xx replies (rejected recipient, authentication).
    """
    recipients = list(dict.fromkeys([*settings.smtp_to, *(extra_to or [])]))
    if not settings.smtp_host or not recipients:
        raise DeliveryFailed("email", "no SMTP host or no recipients configured",
                             transient=False)
    message = build_message(alert, settings.smtp_from, recipients)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=tls_context(settings))
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed("email", f"SMTP {exc.smtp_code}", transient=exc.smtp_code < 500) \
            from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed("email", f"unreachable: {type(exc).__name__}: {exc}",
                             transient=True) from exc


def tls_context(settings: AlertSettings) -> ssl.SSLContext:
    """Verifying context (hostname and chain) trusting the configured CA bundle, if any."""
    cafile = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    return ssl.create_default_context(cafile=cafile)


def build_message(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML second."""
    subject = f"[{state_label(alert)}] {alert.service}/{alert.environment}: {alert.summary}"
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())[:200]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    lines = [
        alert.summary, "",
        f"Service:     {alert.service}",
        f"Environment: {alert.environment}",
        f"Severity:    {alert.severity.value}",
        f"Kind:        {alert.kind.value}",
        f"Dedup key:   {alert.dedup_key}",
    ]
    if alert.link:
        lines.append(f"Run:         {alert.link}")
    if alert.details:
        lines += ["", alert.details]
    message.set_content("\n".join(lines) + "\n")
    link = f'<p><a href="{html.escape(alert.link)}">Prefect run</a></p>' if alert.link else ""
    rows = "".join(
        f"<tr><th align='left'>{name}</th><td>{html.escape(value)}</td></tr>"
        for name, value in [("Service", alert.service), ("Environment", alert.environment),
                            ("Severity", alert.severity.value), ("Kind", alert.kind.value),
                            ("Dedup key", alert.dedup_key)]
    )
    details = f"<pre>{html.escape(alert.details)}</pre>" if alert.details else ""
    message.add_alternative(
        f"<html><body><h2>{html.escape(subject)}</h2><table>{rows}</table>{details}{link}"
        "</body></html>",
        subtype="html",
    )
    return message
