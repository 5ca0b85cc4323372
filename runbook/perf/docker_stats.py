"""A docker slot's CPU and memory during the load test: the engine's stats API, sampled in a
thread while Locust runs, summarized as ``docker stats`` computes it."""

from __future__ import annotations

import threading
from typing import Any

import docker.errors
from docker.models.containers import Container

from runbook.models import ResourceUsage

DOCKER_SOURCE = "docker stats API"
STOP_TIMEOUT_S = 5.0


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
