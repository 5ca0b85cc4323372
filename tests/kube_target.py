"""The kubernetes target on kmock (tests/kmock_cluster.py), as the integration tests drive
it: the real client over HTTP, every rollout done at once, fast polling."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runbook.kube.api import KubeApi, connect
from runbook.kube.settings import KubernetesSettings
from runbook.models import ImageRef
from runbook.targets.kubernetes import KubernetesTarget
from tests.kmock_cluster import Cluster, rolled_out, serve

NO_REGISTRY = "127.0.0.1:9"  # nothing listens: the registry check reports it cannot ask


@contextmanager
def kube_target(tmp_path: Path, scale_down_delay_s: float = 0.0
                ) -> Iterator[tuple[Cluster, KubernetesTarget]]:
    """An emulated cluster whose controller rolls every Deployment out, and the target."""
    with serve(tmp_path) as (emulator, kubeconfig):
        emulator.controller = rolled_out
        settings = KubernetesSettings(kubeconfig=kubeconfig, poll_interval_s=0.02,
                                      request_timeout_s=5, scale_down_delay_s=scale_down_delay_s)
        yield emulator, KubernetesTarget(KubeApi(connect(settings), settings.request_timeout_s),
                                         settings)


def image(revision: str, host: str = NO_REGISTRY, name: str = "agent-api") -> ImageRef:
    """An image reference by digest whose registry nobody answers (none is needed)."""
    return ImageRef(repository=f"{host}/{name}", tag=revision,
                    digest="sha256:" + revision.ljust(64, "0"))


def selector_color(emulator: Cluster, namespace: str, name: str) -> str:
    """The color a Service of the emulated cluster selects."""
    service = emulator.get("services", namespace, name)
    assert service is not None
    return service["spec"]["selector"]["color"]
