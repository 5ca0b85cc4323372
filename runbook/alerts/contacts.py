"""The runbook's "Contact Information": who is on call, who is next, who else to tell.

The ``contacts`` section of ``runbook.yaml``:

```yaml
contacts:
  primary:
    name: Alice Example
    email: alice@example.com
    slack: "@alice"
    pagerduty: {routing_key_env: PD_KEY_PRIMARY, escalation_policy: PXXXXXX}
  secondary:
    name: Bob Example
    email: bob@example.com
    slack: "@bob"
    pagerduty: {routing_key_env: PD_KEY_SECONDARY}
  managers:
    - {name: Carol Example, email: carol@example.com, slack: "@carol"}
  security:
    name: Security team
    email: [security@example.com]
    slack_channel: "#security-incidents"
    pagerduty: {routing_key_env: PD_KEY_SECURITY}
  external:
    - {name: Cloud provider support, role: hosting, email: support@cloud.example}
  response: {p1_minutes: 15, p2_minutes: 60, p3_minutes: 240}
```

Routing keys are secrets: the file names the environment variable that holds one, never the
key. Decisions over these models (who is paged, who is next) are in
:mod:`runbook.alerts.routing`.
"""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from runbook.alerts.models import Alert, AlertKind, Severity
from runbook.priority import ResponseTimes

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class PagerDutyTarget(_Part):
    """Where a page for this person or team goes (a PagerDuty service's Events API v2
    integration, whose escalation policy pages the person)."""

    routing_key_env: str
    """Name of the environment variable holding the integration (routing) key."""
    escalation_policy: str | None = None
    """The PagerDuty escalation policy behind the key (id or name), for the record."""

    @field_validator("routing_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    def routing_key(self) -> SecretStr | None:
        """The key, read at the moment of use; None when the variable is unset."""
        value = os.environ.get(self.routing_key_env, "").strip()
        return SecretStr(value) if value else None


class Contact(_Part):
    """One person."""

    name: str
    email: str | None = None
    slack: str | None = None
    """Slack handle (``@alice``) or member id (``U012AB3CD``): mentioned in messages."""
    pagerduty: PagerDutyTarget | None = None
    """Their page; unset: they are told on Slack and email only."""

    @property
    def mention(self) -> str:
        """How a Slack message names them."""
        if self.slack is None:
            return self.name
        handle = self.slack.removeprefix("@")
        return f"<@{handle}>" if re.fullmatch(r"[UW][A-Z0-9]{6,}", handle) else f"@{handle}"


class SecurityTeam(_Part):
    """Who hears of every security incident."""

    name: str = "security team"
    email: list[str] = Field(default_factory=list)
    slack_channel: str | None = None
    """Their channel: a security incident goes there, not to the team's wide channel."""
    pagerduty: PagerDutyTarget | None = None
    """Their page: security incidents page them (and the primary on-call in production)."""


class ExternalContact(_Part):
    """Someone outside the team the runbook lists (vendor support, a customer's contact)."""

    name: str
    role: str = ""
    """What they are called for (hosting, DNS, the payment provider, ...)."""
    email: str | None = None
    phone: str | None = None
    url: str | None = None


class ContactsConfig(_Part):
    """The ``contacts`` section. Empty: alerts go to the channels of ``RUNBOOK_ALERT_*``
    only and nothing escalates to a person."""

    primary: Contact | None = None
    """On call first: production P1/P2 pages go to them."""
    secondary: Contact | None = None
    """Paged when the primary has not acknowledged by the response deadline."""
    managers: list[Contact] = Field(default_factory=list)
    """Paged (or told) one response deadline after the secondary, if still nobody
    acknowledged."""
    security: SecurityTeam | None = None
    external: list[ExternalContact] = Field(default_factory=list)
    response: ResponseTimes = Field(default_factory=ResponseTimes)
    """How soon someone must acknowledge, per priority (runbook: 15 min, 1 h, 4 h)."""

    @property
    def on_call(self) -> list[Contact]:
        """The escalation chain in order: primary, secondary, managers."""
        return [c for c in (self.primary, self.secondary) if c is not None] + self.managers


class Audience(BaseModel):
    """The people an alert reaches besides the team's channel."""

    pager: PagerDutyTarget | None = None
    """The page for this alert; None: the channel's default routing key."""
    email_to: list[str] = Field(default_factory=list)
    slack_channel: str | None = None
    mentions: list[str] = Field(default_factory=list)
    """Slack mentions put in front of the message (the on-call, the security team)."""


def audience(alert: Alert, contacts: ContactsConfig) -> Audience:
    """Critical production alerts page the primary on-call and mention them; a security
    incident reaches the security team (their email, their channel, their page); the
    runbook review reaches its owners (the primary on-call and the managers)."""
    primary = contacts.primary
    if alert.kind is AlertKind.RUNBOOK_REVIEW:
        owners = [*([primary] if primary else []), *contacts.managers]
        return Audience(mentions=[o.mention for o in owners],
                        email_to=[o.email for o in owners if o.email])
    if alert.kind is AlertKind.SECURITY_INCIDENT and contacts.security is not None:
        team = contacts.security
        return Audience(
            pager=team.pagerduty or (primary.pagerduty if primary else None),
            email_to=list(team.email), slack_channel=team.slack_channel,
            mentions=[primary.mention] if primary else [])
    if primary is None or alert.severity is not Severity.CRITICAL:
        return Audience()
    # Their page reaches them; their email is not added (it would email every alert).
    return Audience(pager=primary.pagerduty, mentions=[primary.mention])
