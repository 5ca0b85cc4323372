"""One environment's parts, resolved: ``runbook.yaml`` where it says something, the local
stack (:class:`~runbook.settings.StackSettings`) where it does not.

Every adapter takes its endpoint from an :class:`EnvironmentInfra` (through
:func:`resolve`), never from a loopback default of its own, so a team moves one part at a
time. The resolved view holds references to secrets (:class:`~runbook.secretref.SecretRef`),
never their values: it is safe to log, to pass as a Prefect task parameter and to hash
into a cache key.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from runbook.config import (
    EnvironmentConfig,
    KubernetesConfig,
    PrometheusConfig,
    PushgatewayConfig,
    RegistryConfig,
    load_config,
)
from runbook.errors import ConfigurationError
from runbook.models import TargetKind
from runbook.secretref import (
    Credentials,
    SecretRef,
    default_docker_config,
    docker_config_credentials,
    reveal,
)
from runbook.settings import StackSettings


class HttpService(BaseModel):
    """An HTTP part of an environment (registry, Prometheus, Pushgateway): where it is, how
    runbook logs in, which certificates it trusts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    part: str
    """What it is: ``registry``, ``prometheus`` or ``pushgateway`` (named in every error)."""
    url: str
    """Base URL, without a trailing slash."""
    username: str | None = None
    """Basic-auth user (registry: also the token service's account)."""
    password: SecretRef | None = None
    """Where the basic-auth password is."""
    bearer_token: SecretRef | None = None
    """Where a bearer token is (instead of basic auth)."""
    docker_config: Path | None = None
    """A Docker ``config.json`` whose ``auths`` entry holds the credentials (registry)."""
    ca_file: Path | None = None
    """CA bundle the server's certificate must chain to; unset: the system's trust store."""
    insecure: bool = False
    """Certificates are not checked (plain HTTP or said explicitly)."""
    local: bool = False
    """True when this is the local stack's component (``runbook stack up`` provides it)."""

    @property
    def label(self) -> str:
        """``registry https://host:5443``: how messages name this part."""
        return f"{self.part} {self.url}"

    @property
    def verify(self) -> bool | str:
        """What HTTP clients take as ``verify``: a CA file, the system store, or off."""
        if self.insecure:
            return False
        return str(self.ca_file) if self.ca_file else True

    @property
    def host(self) -> str:
        """``host:port`` of the URL (registry: the prefix of image references)."""
        return urlsplit(self.url).netloc

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme


class EnvironmentInfra(BaseModel):
    """Everything one environment's run talks to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: str
    target: TargetKind
    """Where releases run: the CLI's ``--target``, else the file's, else docker."""
    registry: HttpService
    prometheus: HttpService
    pushgateway: HttpService
    kubernetes: KubernetesConfig
    """Cluster access; what it leaves unset comes from ``RUNBOOK_K8S_*``
    (:class:`~runbook.kube.settings.KubernetesSettings`)."""
    endpoint: str | None = None
    """What users hit (ingress / load balancer); None: the target's own endpoint."""

    def http_parts(self) -> list[HttpService]:
        """The HTTP parts a run of this environment uses, in the order a run needs them."""
        return [self.registry, self.prometheus, self.pushgateway]

    def local_components(self, *, builds: bool) -> list[str]:
        """The local stack's components this environment's run needs (names of
        ``runbook stack status``). ``builds``: the run builds an image (no ``--image``).

        The docker target runs on the local engine behind the local router; the kubernetes
        target needs the engine only to build. Prefect is not listed: whether the run
        uses the stack's Prefect server depends on ``PREFECT_API_URL``, which the CLI
        decides."""
        needed = []
        if self.target is TargetKind.DOCKER or builds:
            needed.append("docker")
        if self.target is TargetKind.DOCKER:
            needed.append("router")
        needed += [part.part for part in self.http_parts() if part.local]
        return needed


def resolve(settings: StackSettings, environment: str,
            target: TargetKind | str | None = None) -> EnvironmentInfra:
    """The environment's parts: ``settings.configuration`` (``runbook.yaml``) over the
    local stack. ``target``: an explicit choice (the CLI's ``--target``), which wins."""
    env = settings.configuration.environment(environment)
    chosen = TargetKind(target) if target is not None else TargetKind(env.target or "docker")
    return EnvironmentInfra(
        environment=environment,
        target=chosen,
        registry=_registry(env.registry, settings),
        prometheus=_prometheus(env.prometheus, settings),
        pushgateway=_pushgateway(env.pushgateway, settings),
        kubernetes=_kubernetes(env),
        endpoint=env.endpoint.rstrip("/") if env.endpoint else None,
    )


def configured_settings(config: str | Path | None = None) -> StackSettings:
    """The stack settings with the ``runbook.yaml`` in force: ``config`` when given (the
    CLI's ``--config``, the flow's ``config`` parameter), else the one
    :func:`runbook.config.find_config` finds."""
    if config is None:
        return StackSettings()
    return StackSettings(configuration=load_config(Path(config)))


def public_endpoint(infra: EnvironmentInfra, service: str) -> str | None:
    """The configured endpoint of ``service`` (``{service}`` in it is replaced, so one
    pattern serves every service of an environment); None: the target's own."""
    return infra.endpoint.replace("{service}", service) if infra.endpoint else None


def registry_for_image(settings: StackSettings, repository: str) -> HttpService:
    """The configured registry an image reference lives in (its ``host:port`` prefix);
    the local stack's when no environment names that host."""
    host = repository.split("/", 1)[0]
    for name in settings.configuration.environments:
        registry = resolve(settings, name).registry
        if registry.host == host:
            return registry
    return _registry(None, settings)


def credentials(service: HttpService) -> Credentials | None:
    """The login for ``service``, read now: username + password reference, else its Docker
    ``config.json`` entry (the file named, or ``docker login``'s for a registry that names
    no user). None: anonymous."""
    purpose = f"password of {service.label}"
    if service.password is not None:
        if not service.username:
            raise ConfigurationError(f"{service.label}: a password source needs a username")
        return Credentials(service.username, reveal(service.password, purpose))
    if service.docker_config is not None:
        found = docker_config_credentials(service.docker_config, service.host, purpose)
        if found is None:
            raise ConfigurationError(
                f"{service.label}: {service.docker_config} has no auths entry for {service.host}"
            )
        return found
    if service.part == "registry" and not service.local and not service.username:
        return docker_config_credentials(default_docker_config(), service.host, purpose)
    if service.username:
        raise ConfigurationError(f"{service.label}: username {service.username} has no "
                                 "password source (password_env or password_block)")
    return None


def bearer_token(service: HttpService) -> SecretStr | None:
    """The bearer token for ``service``, read now; None when it uses none."""
    if service.bearer_token is None:
        return None
    return reveal(service.bearer_token, f"bearer token of {service.label}")


def docker_auth_config(service: HttpService) -> dict[str, str] | None:
    """The docker SDK's ``auth_config`` for a push to / pull from ``service``. Built at the
    call, handed straight to the engine, never kept or logged."""
    login = credentials(service)
    if login is None:
        return None
    return {"username": login.username, "password": login.password.get_secret_value()}


def _password(source: RegistryConfig | PrometheusConfig | PushgatewayConfig
              ) -> SecretRef | None:
    if source.password_env:
        return SecretRef(kind="env", name=source.password_env)
    if source.password_block:
        return SecretRef(kind="prefect_block", name=source.password_block)
    return None


def _registry(config: RegistryConfig | None, settings: StackSettings) -> HttpService:
    if config is None:
        # The local registry is plain HTTP on loopback (see runbook.stack).
        return HttpService(part="registry", url=f"http://{settings.registry}", insecure=True,
                           local=True)
    return HttpService(
        part="registry", url=config.url.rstrip("/"), username=config.username,
        password=_password(config), docker_config=config.docker_config,
        ca_file=config.ca_file, insecure=config.insecure,
    )


def _prometheus(config: PrometheusConfig | None, settings: StackSettings) -> HttpService:
    if config is None:
        return HttpService(part="prometheus", url=settings.prometheus_url, insecure=True,
                           local=True)
    bearer = SecretRef(kind="env", name=config.bearer_token_env) if config.bearer_token_env \
        else None
    return HttpService(
        part="prometheus", url=config.url.rstrip("/"), username=config.username,
        password=_password(config), bearer_token=bearer, ca_file=config.ca_file,
        insecure=config.insecure,
    )


def _pushgateway(config: PushgatewayConfig | None, settings: StackSettings) -> HttpService:
    if config is None:
        return HttpService(part="pushgateway", url=settings.pushgateway_url, insecure=True,
                           local=True)
    return HttpService(
        part="pushgateway", url=config.url.rstrip("/"), username=config.username,
        password=_password(config), ca_file=config.ca_file, insecure=config.insecure,
    )


def _kubernetes(env: EnvironmentConfig) -> KubernetesConfig:
    return env.kubernetes or KubernetesConfig()
