"""Deploy targets behind one protocol; :func:`make_target` is the only place that picks one."""

from __future__ import annotations

from runbook.adapters.docker_engine import connect
from runbook.errors import ConfigurationError
from runbook.infra import resolve
from runbook.models import TargetKind
from runbook.router import HAProxyRouter
from runbook.settings import StackSettings
from runbook.targets.base import DeployTarget


def make_target(kind: TargetKind | str, settings: StackSettings,
                environment: str | None = None) -> DeployTarget:
    """The deploy target of ``kind``. ``environment``: take its cluster (context,
    namespace, kubeconfig) and registry from ``runbook.yaml``; without it, ``RUNBOOK_K8S_*``
    only (commands that span environments)."""
    kind = TargetKind(kind)
    if kind is TargetKind.DOCKER:
        from runbook.targets.docker import DockerTarget

        return DockerTarget(settings, connect(settings.docker_host), HAProxyRouter(settings))
    if kind is TargetKind.KUBERNETES:
        from runbook.kube.api import KubeApi
        from runbook.kube.api import connect as connect_cluster
        from runbook.kube.settings import KubernetesSettings
        from runbook.targets.kubernetes import KubernetesTarget

        k8s = (KubernetesSettings.for_environment(resolve(settings, environment, kind))
               if environment is not None else KubernetesSettings())
        return KubernetesTarget(KubeApi(connect_cluster(k8s), k8s.request_timeout_s), k8s)
    raise ConfigurationError(f"the {kind.value} target is not available",
                             hint="use --target docker")
