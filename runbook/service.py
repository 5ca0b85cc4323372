"""The service being delivered: a directory with a ``Dockerfile`` and a ``service.yaml``.

Loading validates everything before anything starts, and every error names the file and the
field, so a bad input costs one line and exit code 2, never a half-run pipeline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from runbook.checks.standard import Convention
from runbook.errors import ConfigurationError
from runbook.policy import Policy, PolicyOverrides, effective_policy
from runbook.secrets.spec import SecretSpec

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENVIRONMENTS = ("staging", "production")


class Traffic(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    paths: Annotated[list[str], Field(min_length=1)] = ["/"]
    """Paths the perf stage and verification traffic request, each starting with '/'."""

    @field_validator("paths")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"path {path!r} must start with '/'")
        return paths


class ServiceTests(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    command: Annotated[list[str], Field(min_length=1)]
    """Command run inside the built image (exec form, no shell)."""
    timeout_s: float = Field(default=600, gt=0)
    """Deadline of the test command; past it the run fails the test gate."""
    coverage_path: str | None = None
    """Absolute path, inside the test container, of the Cobertura XML the command writes;
    it is copied out after the run and feeds the coverage gate."""

    junit_path: str | None = None
    """Absolute path of a JUnit XML report the command writes: it names the failed tests
    (without one they are read from unittest's or pytest's output)."""

    @field_validator("coverage_path", "junit_path")
    @classmethod
    def _absolute_path(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("/"):
            raise ValueError(f"{path!r} must be an absolute path inside the container")
        return path


class BuildSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    args: dict[str, str] = Field(default_factory=dict)
    """Docker build arguments; part of the image's content tag."""
    dockerfile: str = "Dockerfile"
    """Dockerfile path, relative to the service directory."""
    timeout_s: float = Field(default=1200.0, gt=0)
    """Deadline for resolving, building and pushing the image, retries included (runbook:
    average build < 10 min, so twice that is a build that hangs, not a slow one)."""


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    memory_mb: int | None = Field(default=None, gt=0)
    """Memory limit (and Kubernetes request) in MiB; unset: none."""
    cpus: float | None = Field(default=None, gt=0)
    """CPU limit (and Kubernetes request) in cores; unset: none."""


class MetricsEndpoint(BaseModel):
    """Where the service serves Prometheus metrics; Prometheus discovers and scrapes it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: str = "/metrics"
    """HTTP path of the Prometheus metrics."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """Container port of the metrics; unset: the service's ``port``."""
    convention: Convention = Convention.CLASSIC
    """Naming of its HTTP metrics, for the ``app`` source's standard queries."""


class ServiceSpec(BaseModel):
    """``service.yaml``: what runbook needs to know about a service."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """The service's name: DNS-safe, it names images, containers, routes and objects."""
    port: int = Field(ge=1, le=65535)
    """Container port the service listens on."""
    health_path: str = "/health"
    """HTTP path answering 200 when the service is healthy."""
    traffic: Traffic = Field(default_factory=Traffic)
    """What the perf stage and verification request."""
    test: ServiceTests | None = None
    """The test stage's command; unset: the test stage is skipped."""
    build: BuildSpec = Field(default_factory=BuildSpec)
    """How the image is built."""
    replicas: int = Field(default=1, ge=1)
    """Pods per color on the kubernetes target."""
    resources: Resources = Field(default_factory=Resources)
    """Memory and CPU limits of each container or pod."""
    overrides: PolicyOverrides = Field(default_factory=PolicyOverrides, alias="policy")
    """``policy``: the service's changes to the runbook's policy, in every environment."""
    environments: dict[str, PolicyOverrides] = Field(default_factory=dict)
    """Per-environment policy changes, over ``policy``."""
    analysis: dict[str, Any] = Field(default_factory=dict)
    """Shorthand for ``policy.analysis`` (where ``analysis.metrics`` are declared);
    ``policy.analysis`` and ``environments.<env>.analysis`` win over it."""
    metrics: MetricsEndpoint | None = None
    """Where the service serves its own metrics (the ``app`` source); unset: not scraped."""
    secrets: list[SecretSpec] = Field(default_factory=list)
    """Secrets the service reads from its environment, rotated by the monthly flow."""

    @field_validator("name")
    @classmethod
    def _dns_safe(cls, name: str) -> str:
        if not DNS_LABEL.match(name):
            raise ValueError(
                f"{name!r} is not DNS-safe (lowercase letters, digits and '-', "
                "at most 63, starting and ending alphanumeric)"
            )
        return name

    @field_validator("health_path")
    @classmethod
    def _health_absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"{path!r} must start with '/'")
        return path

    @field_validator("secrets")
    @classmethod
    def _unique_secrets(cls, secrets: list[SecretSpec]) -> list[SecretSpec]:
        for attribute in ("name", "env"):
            values = [getattr(secret, attribute) for secret in secrets]
            if len(values) != len(set(values)):
                raise ValueError(f"secret {attribute}s must be unique, got {values}")
        return secrets

    @field_validator("environments")
    @classmethod
    def _known_environments(cls, envs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(envs) - set(ENVIRONMENTS))
        if unknown:
            raise ValueError(f"unknown environment(s) {unknown}; known: {list(ENVIRONMENTS)}")
        return envs

    @model_validator(mode="after")
    def _policies_valid(self) -> ServiceSpec:
        layers = [("", [self._analysis_layer()]),
                  ("policy", [self._analysis_layer(), self.overrides])] + [
            (f"environments.{env}", [self._analysis_layer(), self.overrides, layer])
            for env, layer in self.environments.items()
        ]
        for where, stack in layers:
            try:
                effective_policy(*stack)
            except ValidationError as exc:
                error = exc.errors()[0]
                parts = [where] if where else []
                field = ".".join([*parts, *(str(part) for part in error["loc"])])
                message = error["msg"].removeprefix("Value error, ")
                raise ValueError(f"field '{field}': {message}") from None
        return self

    def policy_for(self, environment: str) -> Policy:
        """Runbook defaults, then this service's overrides, then the environment's."""
        layers = [self._analysis_layer(), self.overrides]
        if environment in self.environments:
            layers.append(self.environments[environment])
        return effective_policy(*layers)

    def _analysis_layer(self) -> PolicyOverrides:
        return PolicyOverrides(analysis=self.analysis)


class Service(BaseModel):
    """A loaded service: its directory and its validated spec."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    directory: Path
    """The service directory (``service.yaml``, Dockerfile, sources)."""
    spec: ServiceSpec
    """Its validated ``service.yaml``."""

    @property
    def dockerfile(self) -> Path:
        return self.directory / self.spec.build.dockerfile


def load_service(directory: str | Path) -> Service:
    """Read and validate a service directory. Raises ConfigurationError naming the problem."""
    path = Path(directory)
    if not path.is_dir():
        raise ConfigurationError(f"service directory not found: {path}")
    spec_path = path / "service.yaml"
    if not spec_path.is_file():
        raise ConfigurationError(f"{spec_path}: missing (every service needs a service.yaml)")
    spec = _parse_spec(spec_path)
    service = Service(directory=path.resolve(), spec=spec)
    if not service.dockerfile.is_file():
        raise ConfigurationError(f"{service.dockerfile}: missing Dockerfile")
    return service


def _parse_spec(spec_path: Path) -> ServiceSpec:
    try:
        raw = yaml.safe_load(spec_path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{spec_path}: not valid YAML ({_one_line(str(exc))})") from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{spec_path}: expected a mapping at the top level")
    try:
        return ServiceSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(f"{spec_path}: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = error["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if not error["loc"]:  # a whole-model check names its field in the message
        return f"{message}{suffix}"
    field = ".".join(str(part) for part in error["loc"])
    return f"field '{field}': {message}{suffix}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
