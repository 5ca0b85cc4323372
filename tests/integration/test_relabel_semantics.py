"""The shipped kubernetes_sd relabelling, run by a real Prometheus: Debian's build has no
Kubernetes discovery, so the same relabel rules are applied to a static target carrying the
``__meta_kubernetes_*`` labels that discovery would set for a pod runbook deployed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from runbook.settings import StackSettings
from tests.private_prometheus import free_port, private_prometheus

pytestmark = pytest.mark.stack
SCRAPE = Path(__file__).resolve().parents[2] / "deployments/prometheus/scrape/kubernetes-app.yml"


def pod(port: int, **labels: str) -> dict:
    meta = {f"__meta_kubernetes_pod_label_{k}": v for k, v in labels.items()}
    return {"targets": ["127.0.0.1:8080"], "labels": {
        **meta, "__meta_kubernetes_pod_label_app_kubernetes_io_managed_by": "runbook",
        "__meta_kubernetes_pod_phase": "Running", "__meta_kubernetes_namespace": "prod-ns",
        "__meta_kubernetes_pod_name": "shop-blue-5d8f7-x2x7q",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port),
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics"}}


def test_pod_labels_become_the_series_labels_of_the_app_source(
        stack_settings: StackSettings, tmp_path: Path) -> None:
    [job] = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    job.pop("kubernetes_sd_configs")
    job["static_configs"] = [
        pod(stack_settings.pushgateway_port, app="shop", color="blue", revision="abc123"),
        pod(stack_settings.pushgateway_port, app="shop", color="green", revision="def456",
            environment="production"),
    ]
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}
    port = free_port(stack_settings.host)
    with private_prometheus(config, tmp_path, stack_settings.host, port) as url:
        deadline = time.monotonic() + 30
        while True:
            targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]
            if len(targets["activeTargets"]) == 2:
                break
            assert time.monotonic() < deadline, targets
            time.sleep(0.5)
    labels = sorted((t["labels"] for t in targets["activeTargets"]),
                    key=lambda found: found["color"])
    expected_address = f"127.0.0.1:{stack_settings.pushgateway_port}"
    assert [(found["service"], found["color"], found["revision"], found["environment"])
            for found in labels] == [("shop", "blue", "abc123", "prod-ns"),
                                     ("shop", "green", "def456", "production")]
    assert all(found["instance"] == expected_address for found in labels)
    assert all(found["namespace"] == "prod-ns" for found in labels)
