"""The local stack for real: the shared stack of the default settings, left running."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from runbook import stack
from runbook.settings import StackSettings

# `stack up` twice, asserting it restarts no deployment and resumes no guard: any other
# test stopping a routed container or leaving a dead guard meanwhile (and `stack up`
# restores those of every service) would change that. `make test` runs it after the rest.
pytestmark = [pytest.mark.stack, pytest.mark.exclusive]

COMPONENTS = [
    "docker",
    "registry",
    "prometheus",
    "alertmanager",
    "pushgateway",
    "router",
    "prefect",
    "receiver",
    "base-image",
]
SCRAPE_DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def settings() -> StackSettings:
    return StackSettings()


@pytest.fixture(scope="module")
def first_up(settings: StackSettings) -> list[stack.ComponentStatus]:
    statuses = stack.up(settings)
    unhealthy = [s for s in statuses if not s.healthy]
    assert not unhealthy, f"stack did not come up: {unhealthy}"
    return statuses


def _stack_files(settings: StackSettings) -> dict[Path, tuple[int, bytes]]:
    """Pid files and rendered configurations, with their modification times (the router's
    are not: see below)."""
    root = settings.state_dir
    paths = [
        *sorted((root / "run").glob("*.pid")),
        root / "registry" / "config.yml",
        root / "prometheus" / "prometheus.yml",
        root / "alertmanager" / "alertmanager.yml",
    ]
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths if p.exists()}


def _without_router(pids: dict[str, int]) -> dict[str, int]:
    return {name: pid for name, pid in pids.items() if name != "router"}


def test_second_up_finds_everything_running_and_starts_nothing(
    settings: StackSettings, first_up: list[stack.ComponentStatus]
):
    # The router is left out of the before/after comparison: a route's own HAProxy process
    # starts or stops (and targets.json is rewritten) whenever any test on the shared stack
    # adds or removes a route, under concurrent tests. Its row must still say "already
    # running" below.
    pids_before = _without_router(stack.running_pids(settings))
    files_before = _stack_files(settings)

    second = stack.up(settings)

    assert [s.name for s in second] == [*COMPONENTS, "deployments"]
    assert {s.name: s.action for s in second} == dict.fromkeys(
        [*COMPONENTS, "deployments"], "already running"
    )
    assert all(s.healthy for s in second)
    assert _without_router(stack.running_pids(settings)) == pids_before
    assert _stack_files(settings) == files_before


def test_status_lists_every_component_with_its_url_healthy(
    settings: StackSettings, first_up: list[stack.ComponentStatus]
):
    statuses = stack.status(settings)

    assert [s.name for s in statuses] == COMPONENTS
    urls = {s.name: s.url for s in statuses}
    assert urls == {
        "docker": settings.docker_host,
        "registry": f"http://{settings.registry}",
        "prometheus": settings.prometheus_url,
        "alertmanager": settings.alertmanager_url,
        "pushgateway": settings.pushgateway_url,
        "router": settings.router_metrics_url,
        "prefect": settings.prefect_api_url,
        "receiver": settings.receiver_url,
        "base-image": settings.base_image,
    }
    assert [s.name for s in statuses if not s.healthy] == []


def test_prometheus_scrapes_the_router(
    settings: StackSettings, first_up: list[stack.ComponentStatus]
):
    query = f"{settings.prometheus_url}/api/v1/query"
    deadline = time.monotonic() + SCRAPE_DEADLINE_S
    last: object = None
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            # The main process: route processes come and go with concurrent tests' routes.
            main = f'up{{job="router",instance="{settings.host}:{settings.router_metrics_port}"}}'
            result = http.get(query, params={"query": main}).json()["data"]["result"]
            last = result
            if result and result[0]["value"][1] == "1":
                return
            time.sleep(1.0)
    pytest.fail(f'up{{job="router"}} was not 1 within {SCRAPE_DEADLINE_S:.0f} s: {last}')


def test_base_image_runs_python(settings: StackSettings, first_up: list[stack.ComponentStatus]):
    client = stack.docker_client(settings)
    try:
        output = client.containers.run(
            settings.base_image, ["python3", "-c", "print(1)"], remove=True
        )
    finally:
        client.close()

    assert output == b"1\n"
