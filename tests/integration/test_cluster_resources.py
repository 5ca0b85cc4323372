"""The Kubernetes slot's CPU and memory queries on the real Prometheus, fed with the
standard cAdvisor / kube-state-metrics series through the Pushgateway."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, delete_from_gateway, push_to_gateway

from runbook.perf.cluster_resources import PrometheusContainerSampler
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
LABELS = ("namespace", "pod", "container")


@pytest.fixture
def cluster_series(stack_settings: StackSettings) -> Iterator[tuple[str, CollectorRegistry]]:
    job = f"cluster-resources-{uuid.uuid4().hex[:6]}"
    yield job, CollectorRegistry()
    delete_from_gateway(stack_settings.pushgateway_url, job=job, timeout=5)


def push(settings: StackSettings, job: str, namespace: str, cpu_seconds: float) -> None:
    registry = CollectorRegistry()
    pod = ("shop-blue-7d9f8c6b5-x2x4z", "app")
    Gauge("container_cpu_usage_seconds_total", "cpu", LABELS, registry=registry).labels(
        namespace, *pod).set(cpu_seconds)
    Gauge("container_memory_working_set_bytes", "mem", LABELS, registry=registry).labels(
        namespace, *pod).set(128 * 2**20)
    limits = Gauge("kube_pod_container_resource_limits", "limits", [*LABELS, "resource"],
                   registry=registry)
    limits.labels(namespace, *pod, "cpu").set(1)
    limits.labels(namespace, *pod, "memory").set(256 * 2**20)
    push_to_gateway(settings.pushgateway_url, job=job, registry=registry, timeout=5)


def test_cpu_and_memory_share_of_the_limits(
    stack_settings: StackSettings, cluster_series: tuple[str, CollectorRegistry]
) -> None:
    job, _ = cluster_series
    namespace = f"ns{uuid.uuid4().hex[:6]}"
    sampler = PrometheusContainerSampler(stack_settings.prometheus_url, namespace, "shop-blue")
    with sampler:
        push(stack_settings, job, namespace, cpu_seconds=0.0)
        time.sleep(3 * stack_settings.scrape_interval_s)
        push(stack_settings, job, namespace, cpu_seconds=3.0)
        time.sleep(3 * stack_settings.scrape_interval_s)
        usage = sampler.usage()
    assert usage.memory_max_pct == 50.0
    assert usage.cpu_avg_pct is not None and 0 < usage.cpu_avg_pct <= 100
    assert "Prometheus" in usage.source


def test_no_series_is_not_measured(stack_settings: StackSettings) -> None:
    sampler = PrometheusContainerSampler(stack_settings.prometheus_url, "nowhere", "none-blue")
    with sampler:
        usage = sampler.usage()
    assert usage.cpu_avg_pct is None and usage.memory_max_pct is None
    assert "no series for cpu, memory" in usage.detail
