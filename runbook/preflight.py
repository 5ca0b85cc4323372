"""Before anything is built: probe every part the chosen environment's run will use, and
only those. A wrong password, an unknown CA, an unreachable URL or a digest that is not in
the registry is one line naming the part (``registry https://host:5443: authentication
failed (401) for user ci``), raised as :class:`ConfigurationError` (exit 2).

The local stack is asked about only for the components the run takes from it
(:meth:`EnvironmentInfra.local_components`): ``--target kubernetes`` with a configured
registry and Prometheus needs none of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from runbook.adapters.prometheus import RouterMetrics
from runbook.adapters.pushgateway import Pushgateway
from runbook.adapters.registry import Registry
from runbook.build import prebuilt_ref
from runbook.errors import ConfigurationError, RunbookError, TransientError
from runbook.infra import EnvironmentInfra, HttpService
from runbook.kube.settings import KubernetesSettings
from runbook.models import TargetKind
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings

Probe = Callable[[], None]
T = TypeVar("T")


def check_environment(infra: EnvironmentInfra, settings: RunbookSettings, *, builds: bool,
                      local_prefect: bool) -> None:
    """Probe the parts a pipeline run of ``infra`` uses; raise on the first that fails.

    Args:
        infra: The environment's resolved parts.
        settings: The run's settings (the local stack for the parts it provides, cluster
            access).
        builds: The run builds an image (no ``--image``): the Docker engine is needed.
        local_prefect: Runs go to the local stack's Prefect server (no PREFECT_API_URL).
    """
    # Cheapest first: the kubeconfig is read, not dialled.
    if infra.target is TargetKind.KUBERNETES:
        check_cluster(settings.kubernetes.for_environment(infra))
    for part in infra.http_parts():
        if not part.local:
            _probe(part, _probe_of(part))
    check_local_stack(settings.stack, infra.local_components(builds=builds)
                      + (["prefect"] if local_prefect else []))


def check_local_stack(settings: StackSettings, components: list[str]) -> None:
    """The named components of the local stack are healthy, else one line saying which
    are not and how to start them."""
    if not components:
        return
    from runbook import stack

    down = [s.name for s in stack.status_of(settings, components) if not s.healthy]
    if down:
        raise RunbookError(f"local stack not healthy ({', '.join(down)})",
                           hint="run `runbook stack up`", reference="README.md#the-local-stack")


def check_cluster(kubernetes: KubernetesSettings) -> None:
    """The environment's kubeconfig / context loads (bad cluster configuration is bad
    input: one line, exit 2). ``kubernetes``: the environment's cluster access
    (:meth:`RunbookSettings.kubernetes_for`)."""
    from runbook.kube.api import connect

    connect(kubernetes)


def check_prebuilt(infra: EnvironmentInfra, reference: str) -> None:
    """``--image``: the reference is a digest in the environment's registry."""
    image = prebuilt_ref(reference, infra.registry.host)
    name = image.repository.removeprefix(f"{infra.registry.host}/")
    found = _probe(infra.registry,
                   lambda: Registry.of(infra.registry).manifest_digest(name, image.digest))
    if found is None:
        raise ConfigurationError(f"--image {reference}: no such manifest in "
                                 f"{infra.registry.label}")


def _probe_of(part: HttpService) -> Probe:
    if part.part == "registry":
        return Registry.of(part).check
    if part.part == "prometheus":
        return RouterMetrics.of(part).check
    return Pushgateway.of(part).check


def _probe(part: HttpService, probe: Callable[[], T]) -> T:
    """Run one probe; an unreachable part is bad configuration here (the run has not
    started, nothing retries it): one line naming it."""
    try:
        return probe()
    except TransientError as exc:
        message = str(exc)
        raise ConfigurationError(message if part.label in message
                                 else f"{part.label}: {message}") from None
