"""The daily health's route metrics against the real Prometheus of the local stack, and the
build's base images resolved by the real Docker engine (cheap: a few queries and lookups)."""

from __future__ import annotations

import uuid

import docker
import pytest

from runbook.adapters.app_metrics import day_metrics, discover_routes
from runbook.adapters.base_images import resolve_bases
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
DAY_S = 86400


def test_a_route_without_traffic_is_no_data_not_zero(stack_settings: StackSettings) -> None:
    route = f"never-{uuid.uuid4().hex[:8]}.staging"
    [metrics] = day_metrics(stack_settings.prometheus_url, [route], DAY_S)
    assert metrics.route == route
    assert (metrics.requests, metrics.errors, metrics.error_rate,
            metrics.avg_response_time_s) == (None, None, None, None)


def test_discovered_routes_leave_out_preview_proxies(stack_settings: StackSettings) -> None:
    routes = discover_routes(stack_settings.prometheus_url, DAY_S)
    assert all(not r.endswith(".preview") and "." in r for r in routes)
    measured = [m for m in day_metrics(stack_settings.prometheus_url, routes[:3], DAY_S)
                if m.requests]
    for m in measured:  # a route with traffic has a rate between 0 and 1
        assert m.error_rate is not None and 0 <= m.error_rate <= 1


def test_bases_resolve_to_the_local_image_id(stack_settings: StackSettings) -> None:
    client = docker.DockerClient(base_url=stack_settings.docker_host, timeout=30)
    try:
        local_id = client.images.get(stack_settings.base_image).id
    finally:
        client.close()
    missing = f"runbook-missing-{uuid.uuid4().hex[:8]}:1"
    resolution = resolve_bases(stack_settings.docker_host, [stack_settings.base_image, missing])
    assert resolution.resolved == {stack_settings.base_image: local_id}
    assert resolution.unresolved == [missing]
