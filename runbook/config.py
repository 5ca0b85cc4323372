"""`runbook.yaml`: where each environment's parts are (registry, Prometheus, cluster,
endpoint) and where state lives. No file means the local stack, unchanged.

Found at ``--config PATH``, else ``$RUNBOOK_CONFIG``, else ``runbook.yaml`` in the working
directory or the nearest parent that is a git checkout. Environment variables override the
file (``RUNBOOK__STATE__URL``, ``RUNBOOK__ENVIRONMENTS__STAGING__ENDPOINT``, ...: prefix
``RUNBOOK__``, nested with ``__``) so a CI job changes one value without a second file.

Secrets are never values in this file: a field names where the secret is (an environment
variable, a Docker ``config.json``, a Prefect Secret block) and :mod:`runbook.secretref`
resolves it at the moment of use, as a ``SecretStr``.

What an environment leaves unset comes from the local stack (:class:`StackSettings`), so a
team moves one part at a time (say, only the registry).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from runbook.alerts.contacts import ContactsConfig
from runbook.errors import ConfigurationError

CONFIG_FILE_NAME = "runbook.yaml"
CONFIG_ENV = "RUNBOOK_CONFIG"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class SecretSource(_Part):
    """Where one secret is read from; at most one of the three. The value never appears in
    this file, a log, a report or an exception message."""

    password_env: str | None = None
    """Name of the environment variable holding the password (not the password)."""
    password_block: str | None = None
    """Name of a Prefect Secret block holding the password."""

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if self.password_env and self.password_block:
            raise ValueError("set password_env or password_block, not both")
        return self


class TLSConfig(_Part):
    """How a server's certificate is checked."""

    ca_file: Path | None = None
    """PEM bundle of the CAs that signed the server's certificate (a company CA); unset:
    the system's trust store."""
    insecure: bool = False
    """Skip certificate verification (plain HTTP, or a self-signed certificate). Must be
    said explicitly; never the default."""


class RegistryConfig(SecretSource, TLSConfig):
    """The image registry of an environment (Docker Registry HTTP API v2)."""

    url: str
    """Base URL, e.g. ``https://registry.example:5443``; its host:port prefixes image
    references. ``http://`` is accepted only together with ``insecure: true``."""
    username: str | None = None
    """Registry login (basic auth, or the token service's account)."""
    docker_config: Path | None = None
    """A Docker ``config.json`` whose ``auths`` entry for this registry holds the
    credentials (as ``docker login`` writes it); used when no password source is set."""

    @model_validator(mode="after")
    def _plain_http_is_explicit(self) -> RegistryConfig:
        if self.url.startswith("http://") and not self.insecure:
            raise ValueError(f"registry {self.url} is plain HTTP: set insecure: true to allow it")
        return self


class PrometheusConfig(SecretSource, TLSConfig):
    """The Prometheus that verification, perf resources and daily health read."""

    url: str
    """Base URL of its HTTP API, e.g. ``https://prometheus.example:9443``."""
    username: str | None = None
    """Basic-auth user (with ``password_env`` / ``password_block``)."""
    bearer_token_env: str | None = None
    """Name of the environment variable holding a bearer token, instead of basic auth."""

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusConfig:
        if self.bearer_token_env and self.username:
            raise ValueError("set username (basic auth) or bearer_token_env, not both")
        return self


class PushgatewayConfig(SecretSource, TLSConfig):
    """Where run metrics are pushed."""

    url: str
    """Base URL of the Pushgateway."""
    username: str | None = None
    """Basic-auth user, if the gateway sits behind one."""


class KubernetesConfig(_Part):
    """How the kubernetes target reaches this environment's cluster."""

    context: str | None = None
    """Kubeconfig context; unset: the current one (or the in-cluster service account)."""
    namespace: str | None = None
    """Namespace of the environment's objects; unset: the environment's name."""
    kubeconfig: Path | None = None
    """Kubeconfig file; unset: ``$KUBECONFIG``, ``~/.kube/config``, or in-cluster."""


class EnvironmentConfig(_Part):
    """One environment's parts. Everything unset comes from the local stack."""

    target: Literal["docker", "kubernetes"] | None = None
    """Where releases of this environment run; unset: the CLI's ``--target`` (docker)."""
    registry: RegistryConfig | None = None
    """Image registry; unset: the local stack's (127.0.0.1:5000, plain HTTP)."""
    prometheus: PrometheusConfig | None = None
    """Metrics source; unset: the local stack's Prometheus."""
    pushgateway: PushgatewayConfig | None = None
    """Run metrics sink; unset: the local stack's Pushgateway."""
    kubernetes: KubernetesConfig | None = None
    """Cluster access for ``target: kubernetes``."""
    endpoint: str | None = None
    """The URL users hit for this environment (ingress / load balancer); reported as the
    run's ``endpoint``. Unset: the target's own (the local router's port)."""


class StateConfig(_Part):
    """Where state that outlives a run is kept (see :mod:`runbook.store`)."""

    url: str | None = None
    """SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql+psycopg://user@host/db``
    (password through ``password_env``, never in the URL). Unset: SQLite in the stack's
    state directory."""
    password_env: str | None = None
    """Name of the environment variable holding the database password."""


class RunbookConfig(BaseSettings):
    """The root of ``runbook.yaml``."""

    model_config = SettingsConfigDict(
        env_prefix="RUNBOOK__", env_nested_delimiter="__", extra="forbid",
        use_attribute_docstrings=True,
    )

    state: StateConfig = Field(default_factory=StateConfig)
    """State store (baselines, scan history, incidents, outbox, rotation, approvals, run
    and release records)."""
    environments: dict[str, EnvironmentConfig] = Field(default_factory=dict)
    """Per environment (``staging``, ``production``, ...) its parts."""
    contacts: ContactsConfig = Field(default_factory=ContactsConfig)
    """On-call and contacts (:mod:`runbook.alerts.contacts`): who is paged, who is next."""
    source: Path | None = Field(default=None, exclude=True)
    """The file this was read from; None: no file (the local stack)."""

    def environment(self, name: str) -> EnvironmentConfig:
        """The environment's parts; an environment the file does not name is all local."""
        return self.environments.get(name, EnvironmentConfig())

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the file (passed as init values), so CI can
        # override one field of a checked-in runbook.yaml.
        return env_settings, init_settings


def find_config(explicit: Path | None = None, cwd: Path | None = None) -> Path | None:
    """The configuration file in force: ``explicit``, ``$RUNBOOK_CONFIG``, or
    ``runbook.yaml`` in ``cwd`` or its nearest parent git checkout. None: no file."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    here = (cwd or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
        if (directory / ".git").exists():
            return None
    return None


def load_config(explicit: Path | None = None, cwd: Path | None = None) -> RunbookConfig:
    """Read the configuration in force; raises :class:`ConfigurationError` naming the file
    and the field when it is invalid."""
    path = find_config(explicit, cwd)
    if path is None:
        return _validated({}, None)
    if not path.is_file():
        raise ConfigurationError(f"{path}: configuration file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: not readable YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a mapping at the top level")
    return _validated(data, path)


def _validated(data: dict[str, object], path: Path | None) -> RunbookConfig:
    try:
        config = RunbookConfig(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(
            f"{path or 'RUNBOOK__ variables'}: {where}: {first['msg']}"
        ) from None
    config.source = path
    return config
