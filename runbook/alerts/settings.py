"""Where alerts go: channel credentials and addresses, read from ``RUNBOOK_ALERT_*``.

Secrets are ``SecretStr``: they print as ``**********`` in logs, reprs and reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from runbook.alerts.contacts import ContactsConfig, PagerDutyTarget, audience
from runbook.alerts.models import Alert, AlertKind, Channel


class ServiceRouting(BaseModel):
    """Per-service routing: who else hears about a service, and where it pages."""

    page_environments: list[str] = Field(default_factory=lambda: ["production"])
    """Environments whose critical alerts page (PagerDuty). Runbook: production incidents."""
    email_to: list[str] = Field(default_factory=list)
    """Extra recipients who get every alert of this service by email."""
    slack_channel: str | None = None
    """Another Slack channel for this service (default: the team's channel)."""


class AlertSettings(BaseSettings):
    """Alert channels. A channel without its credentials or address is not configured."""

    model_config = SettingsConfigDict(env_prefix="RUNBOOK_ALERT_", extra="ignore")

    slack_token: SecretStr | None = Field(default=None, description="Slack bot token (xoxb-).")
    slack_channel: str = Field(default="#devops-alerts", description="The runbook's channel.")
    slack_base_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base URL."
    )
    smtp_host: str | None = Field(default=None, description="SMTP relay host.")
    smtp_port: int = Field(default=587, description="SMTP port (587: submission + STARTTLS).")
    smtp_from: str = Field(default="runbook@localhost", description="Sender address.")
    smtp_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="The DevOps team's addresses, comma separated."
    )
    smtp_starttls: bool = Field(default=True, description="Upgrade the connection with TLS.")
    smtp_ca_file: Path | None = Field(
        default=None, description="PEM bundle of the CAs trusted for the relay's certificate "
        "(a company CA); unset: the system's trust store. The certificate is always verified."
    )
    smtp_username: str | None = Field(default=None, description="SMTP login, if required.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    pagerduty_routing_key: SecretStr | None = Field(
        default=None, description="Events API v2 integration (routing) key."
    )
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="Events API v2 URL."
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Per request, every channel.")
    max_attempts: int = Field(
        default=4, ge=1, description="Attempts per delivery for transient faults (429, 5xx)."
    )
    backoff_s: float = Field(
        default=1.0, ge=0, description="First backoff when no Retry-After says otherwise; "
        "doubles per attempt."
    )
    max_backoff_s: float = Field(
        default=30.0, ge=0, description="Longest wait honoured, Retry-After included, so a "
        "delivery always ends within max_attempts * max_backoff_s."
    )
    security_email_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="The security team's addresses, comma separated: "
        "every security incident is emailed to them."
    )
    security_slack_channel: str | None = Field(
        default=None, description="The security team's Slack channel: security incidents go "
        "there instead of the team's channel (an open security incident is not for a wide "
        "audience)."
    )
    state_dir: Path | None = Field(
        default=None, description="State directory whose default state store (state.db) "
        "holds the outbox and incidents, when runbook.yaml sets no state.url; default: the "
        "stack's state directory (RUNBOOK_STATE_DIR)."
    )
    contacts: ContactsConfig = Field(
        default_factory=ContactsConfig, description="On-call and contacts: the `contacts` "
        "section of runbook.yaml (RunbookSettings.load sets it)."
    )
    services: dict[str, ServiceRouting] = Field(
        default_factory=dict,
        description='Per-service routing as JSON, e.g. {"agent-api": {"email_to": [...]}}.',
    )

    @field_validator("smtp_to", "security_email_to", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def configured(self) -> frozenset[Channel]:
        """The channels that have what they need to send."""
        channels = set()
        if self.slack_token is not None:
            channels.add(Channel.SLACK)
        if self.smtp_host and self.smtp_to:
            channels.add(Channel.EMAIL)
        if self.pagerduty_routing_key is not None or self._contact_pages():
            channels.add(Channel.PAGERDUTY)
        return frozenset(channels)

    def _contact_pages(self) -> bool:
        teams = [*self.contacts.on_call, self.contacts.security]
        return any(t is not None and t.pagerduty is not None
                   and t.pagerduty.routing_key() is not None for t in teams)

    def routing_for(self, service: str) -> ServiceRouting:
        return self.services.get(service, ServiceRouting())

    def routing_for_alert(self, alert: Alert) -> ServiceRouting:
        """The service's routing for this alert: a security incident also reaches the
        security team (their addresses; their Slack channel when they have one)."""
        routing = self.routing_for(alert.service)
        people = audience(alert, self.contacts)
        if alert.kind is not AlertKind.SECURITY_INCIDENT:
            return routing.model_copy(update={
                "email_to": list(dict.fromkeys([*routing.email_to, *people.email_to]))})
        return routing.model_copy(update={
            "email_to": list(dict.fromkeys([*routing.email_to, *self.security_email_to,
                                            *people.email_to])),
            "slack_channel": (people.slack_channel or self.security_slack_channel
                              or routing.slack_channel),
        })

    def pagerduty_key_for(self, alert: Alert) -> SecretStr | None:
        """The routing key of the alert's page: the named contact's (an escalation), the
        audience's (primary on-call, security team), else the default key."""
        named = alert.page_key_env
        if named is not None:
            return PagerDutyTarget(routing_key_env=named).routing_key()
        pager = audience(alert, self.contacts).pager
        return (pager.routing_key() if pager else None) or self.pagerduty_routing_key

