"""Deploy targets behind one protocol; :func:`make_target` is the only place that picks one."""

from __future__ import annotations

from runbook.adapters.docker_engine import connect
from runbook.errors import ConfigurationError
from runbook.models import TargetKind
from runbook.router import HAProxyRouter
from runbook.settings_root import RunbookSettings
from runbook.targets.base import DeployTarget


def make_target(kind: TargetKind | str, settings: RunbookSettings,
                environment: str | None = None) -> DeployTarget:
    """The deploy target of ``kind``, configured from the run's settings root.
    ``environment``: take its cluster (context, namespace, kubeconfig) and registry from
    ``runbook.yaml``; without it, ``settings.kubernetes`` only (commands that span
    environments)."""
    kind = TargetKind(kind)
    if kind is TargetKind.DOCKER:
        from runbook.targets.docker import DockerTarget

        stack = settings.stack
        return DockerTarget(stack, connect(stack.docker_host), HAProxyRouter(stack))
    if kind is TargetKind.KUBERNETES:
        from runbook.kube.api import KubeApi
        from runbook.kube.api import connect as connect_cluster
        from runbook.targets.kubernetes import KubernetesTarget

        k8s = settings.kubernetes_for(environment, kind)
        return KubernetesTarget(KubeApi(connect_cluster(k8s), k8s.request_timeout_s), k8s)
    raise ConfigurationError(f"the {kind.value} target is not available",
                             hint="use --target docker")
