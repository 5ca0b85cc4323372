"""Shared fixtures. Tests marked ``stack`` run against the real local stack (started once,
idempotently, and left running: it is shared with `make demo`)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from runbook.settings import StackSettings

# Before any test module imports prefect: its settings are read once, at import.
os.environ.setdefault("PREFECT_API_URL", StackSettings().prefect_api_url)

REPO = Path(__file__).resolve().parents[1]
TEST_SERVICE_PREFIX = "e2e-"  # services the tests deliver; nothing else is named so
SAMPLE = REPO / "examples" / "agent-api"

# Short windows so an end-to-end release takes ~30 s; the logic is the same as the defaults.
FAST_POLICY = {
    "perf": {"users": 4, "duration_s": 4},
    "analysis": {"window_s": 15, "interval_s": 3, "guard_s": 20},
    "deploy": {"health_timeout_s": 10},
}


@pytest.fixture(scope="session")
def stack_settings() -> StackSettings:
    from runbook import stack

    settings = StackSettings()
    statuses = stack.up(settings)
    unhealthy = [f"{s.name}: {s.detail}" for s in statuses if not s.healthy]
    assert not unhealthy, f"local stack not healthy: {unhealthy}"
    _remove_leftover_test_services(settings)
    return settings


def _remove_leftover_test_services(settings: StackSettings) -> None:
    """Services of an earlier, interrupted test session would keep their containers and
    route ports forever (and be restarted by every `stack up`)."""
    from runbook.router import HAProxyRouter
    from runbook.targets import make_target

    deploy_target = make_target("docker", settings)
    for route in HAProxyRouter(settings).routes():
        if route.service.startswith(TEST_SERVICE_PREFIX):
            deploy_target.decommission(route.service, route.environment)


@pytest.fixture
def sample_service(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """A copy of the sample service under a unique name (so it has its own route), taken
    out of the stack again afterwards so repeated runs do not use up the route ports."""
    names: list[str] = []

    def make(policy: dict | None = None, **spec_changes: object) -> Path:
        target = tmp_path / f"svc-{uuid.uuid4().hex[:6]}"
        shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
        spec = yaml.safe_load((target / "service.yaml").read_text())
        spec["name"] = f"{TEST_SERVICE_PREFIX}{target.name}"
        names.append(spec["name"])
        spec["policy"] = policy if policy is not None else FAST_POLICY
        spec.update(spec_changes)
        (target / "service.yaml").write_text(yaml.safe_dump(spec))
        return target

    yield make
    if names:
        from runbook.targets import make_target

        deploy_target = make_target("docker", StackSettings())
        for name in names:
            for environment in ("staging", "production"):
                deploy_target.decommission(name, environment)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL cluster for this test session (tests/postgres_cluster.py).
    Tests using it are `stack` tests: PostgreSQL is a real service."""
    from tests.postgres_cluster import postgres_cluster

    with postgres_cluster() as url:
        yield url
