"""CPU and memory of a Kubernetes slot during the load test, from the cluster's Prometheus.

The standard series of a cluster's monitoring stack: cAdvisor's
``container_cpu_usage_seconds_total`` and ``container_memory_working_set_bytes`` (kubelet)
and kube-state-metrics' ``kube_pod_container_resource_limits``. A slot's pods are those of
its Deployment (``<service>-<color>-…``) in the environment's namespace. Missing series are
reported as not measured, never as zero.
"""

from __future__ import annotations

import math
import time

from runbook.adapters.prometheus import RouterMetrics
from runbook.errors import TransientError
from runbook.infra import HttpService
from runbook.models import ResourceUsage

SOURCE = "Prometheus container metrics (cAdvisor + kube-state-metrics)"


def pod_selector(namespace: str, deployment: str) -> str:
    # ReplicaSet pods are named <deployment>-<template hash>-<suffix>.
    return f'namespace="{namespace}",pod=~"{deployment}-[a-z0-9]+-[a-z0-9]+",container!=""'


def cpu_query(selector: str, window_s: int) -> str:
    return (
        f"100 * sum(rate(container_cpu_usage_seconds_total{{{selector}}}[{window_s}s]))"
        f' / sum(kube_pod_container_resource_limits{{{selector},resource="cpu"}})'
    )


def memory_query(selector: str, window_s: int) -> str:
    return (
        f"100 * max(max_over_time(container_memory_working_set_bytes{{{selector}}}"
        f"[{window_s}s])) / max(kube_pod_container_resource_limits"
        f'{{{selector},resource="memory"}})'
    )


class PrometheusContainerSampler:
    """Reads the slot's usage over the test window once the test ends."""

    def __init__(self, prometheus_url: str, namespace: str, deployment: str, *,
                 service: HttpService | None = None) -> None:
        self._metrics = RouterMetrics(prometheus_url, service=service)
        self._selector = pod_selector(namespace, deployment)
        self._started = time.monotonic()

    def __enter__(self) -> PrometheusContainerSampler:
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def usage(self) -> ResourceUsage:
        window = max(math.ceil(time.monotonic() - self._started), 10)
        try:
            cpu = self._metrics.scalar(cpu_query(self._selector, window))
            memory = self._metrics.scalar(memory_query(self._selector, window))
        except TransientError as exc:
            return ResourceUsage(source=SOURCE, detail=f"not measured: {exc}")
        missing = [name for name, value in (("cpu", cpu), ("memory", memory)) if value is None]
        return ResourceUsage(
            cpu_avg_pct=None if cpu is None else round(cpu, 2),
            memory_max_pct=None if memory is None else round(memory, 2),
            samples=0 if missing else 1,
            source=SOURCE,
            detail=f"no series for {', '.join(missing)} ({self._selector})" if missing
            else f"over the last {window} s ({self._selector})",
        )
