"""CPU and memory of the load-tested slot during the test, as a share of its limits.

Docker target: the engine's stats API, sampled in a thread while Locust runs. Kubernetes:
the same numbers come from Prometheus container metrics (cAdvisor's
``container_cpu_usage_seconds_total`` and ``container_memory_working_set_bytes`` against the
pod's limits); that query belongs to the Kubernetes target (issue #5) and is not made here,
so the report says the resources were not measured and the resource gates fail.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import docker
import docker.errors
from docker.models.containers import Container

from runbook.models import ResourceUsage, Slot, TargetKind
from runbook.settings_root import RunbookSettings

DOCKER_SOURCE = "docker stats API"
STOP_TIMEOUT_S = 5.0


class ResourceSampler(Protocol):
    """Samples a slot's resource use between ``__enter__`` and ``__exit__``."""

    def __enter__(self) -> ResourceSampler: ...

    def __exit__(self, *exc: object) -> None: ...

    def usage(self) -> ResourceUsage: ...


def cpu_cores(sample: dict[str, Any]) -> float | None:
    """CPU cores in use between the sample's two readings (``precpu_stats`` -> ``cpu_stats``)."""
    cpu, pre = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    try:
        used = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        elapsed = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
    return used / elapsed * online if elapsed > 0 else None


def memory_bytes(sample: dict[str, Any]) -> float | None:
    """Memory in use without reclaimable page cache, as ``docker stats`` computes it."""
    memory = sample.get("memory_stats") or {}
    if "usage" not in memory:
        return None
    stats = memory.get("stats") or {}
    cache = stats.get("inactive_file", stats.get("total_inactive_file", 0))
    return float(memory["usage"] - cache)


def cpu_limit_cores(container_attrs: dict[str, Any], sample: dict[str, Any]) -> float:
    """The container's CPU limit in cores; the host's CPUs when it has none."""
    host_config = container_attrs.get("HostConfig") or {}
    if host_config.get("NanoCpus"):
        return float(host_config["NanoCpus"]) / 1e9
    if host_config.get("CpuQuota", 0) > 0 and host_config.get("CpuPeriod"):
        return float(host_config["CpuQuota"]) / float(host_config["CpuPeriod"])
    return float((sample.get("cpu_stats") or {}).get("online_cpus") or 1)


def summarize_docker_stats(
    samples: list[dict[str, Any]], container_attrs: dict[str, Any]
) -> ResourceUsage:
    """Average and peak CPU, peak memory, each as % of the container's limit (pure)."""
    if not samples:
        return ResourceUsage(source=DOCKER_SOURCE, detail="no stats sample during the test")
    limit_cores = cpu_limit_cores(container_attrs, samples[-1])
    cpu = [c / limit_cores * 100 for c in map(cpu_cores, samples) if c is not None]
    memory_limit = max(float((s.get("memory_stats") or {}).get("limit") or 0) for s in samples)
    memory = [m / memory_limit * 100 for m in map(memory_bytes, samples)
              if m is not None and memory_limit > 0]
    return ResourceUsage(
        cpu_avg_pct=round(sum(cpu) / len(cpu), 2) if cpu else None,
        cpu_max_pct=round(max(cpu), 2) if cpu else None,
        memory_max_pct=round(max(memory), 2) if memory else None,
        samples=len(samples),
        source=DOCKER_SOURCE,
        detail=f"limits: {limit_cores:g} CPU, {memory_limit / 2**20:.0f} MiB",
    )


class DockerStatsSampler:
    """Reads the container's stats once a second in a thread while the load runs."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DockerStatsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # Not one-shot: the engine waits a cycle so precpu_stats gives a CPU delta.
                self.samples.append(self.container.stats(stream=False))
            except (docker.errors.APIError, OSError):
                self._stop.wait(1.0)

    def usage(self) -> ResourceUsage:
        return summarize_docker_stats(list(self.samples), self.container.attrs)


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


def resource_sampler(target: TargetKind, slot: Slot, settings: RunbookSettings
                     ) -> ResourceSampler:
    """The sampler for the slot's target (the only place that branches on it here)."""
    if TargetKind(target) is TargetKind.KUBERNETES:
        from runbook.infra import resolve
        from runbook.kube.manifests import deployment_name
        from runbook.perf.cluster_resources import PrometheusContainerSampler

        infra = resolve(settings.stack, slot.environment, target)
        kube = settings.kubernetes.for_environment(infra)
        # runbook.yaml's Prometheus of the environment, with its login; else RUNBOOK_K8S_'s.
        prometheus = None if infra.prometheus.local else infra.prometheus
        return PrometheusContainerSampler(
            kube.prometheus_url or settings.stack.prometheus_url,
            kube.namespace(slot.environment),
            deployment_name(slot.service, slot.color), service=prometheus,
        )
    from runbook.adapters.docker_engine import connect
    from runbook.targets.docker import LABEL

    client = connect(settings.stack.docker_host)
    containers = client.containers.list(filters={"label": [
        f"{LABEL}.service={slot.service}", f"{LABEL}.environment={slot.environment}",
        f"{LABEL}.server={slot.server}",
    ]})
    if not containers:
        return UnmeasuredResources(DOCKER_SOURCE, f"no running container for {slot.server}")
    return DockerStatsSampler(containers[0])
