"""CPU and memory of the load-tested slot during the test, as a share of its limits.

Each deploy target samples its own slots (``DeployTarget.resource_sampler``): the docker
target reads the engine's stats API (:mod:`runbook.perf.docker_stats`), the kubernetes
target the cluster's Prometheus container metrics (:mod:`runbook.perf.cluster_resources`).
What cannot be measured is reported as such, never as zero.
"""

from __future__ import annotations

from typing import Protocol

from runbook.models import ResourceUsage


class ResourceSampler(Protocol):
    """Samples a slot's resource use between ``__enter__`` and ``__exit__``."""

    def __enter__(self) -> ResourceSampler: ...

    def __exit__(self, *exc: object) -> None: ...

    def usage(self) -> ResourceUsage: ...


class UnmeasuredResources:
    """No sampler for this target: says why instead of inventing numbers."""

    def __init__(self, source: str, detail: str) -> None:
        self._usage = ResourceUsage(source=source, detail=detail)

    def __enter__(self) -> UnmeasuredResources:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def usage(self) -> ResourceUsage:
        return self._usage
