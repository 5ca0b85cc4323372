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
from runbook.store.layout import StateLayout

# Before any test module imports prefect: its settings are read once, at import.
os.environ.setdefault("PREFECT_API_URL", StackSettings().prefect_api_url)

REPO = Path(__file__).resolve().parents[1]
# Tells people what a service on the stack is; cleanup follows the session record instead.
TEST_SERVICE_PREFIX = "test-"
SAMPLE = REPO / "examples" / "agent-api"

# Short windows so an end-to-end release takes ~30 s; the logic is the same as the defaults.
FAST_POLICY = {
    "perf": {"users": 4, "duration_s": 4},
    # No guard: each guarded release runs its own guard process with traffic, which on two
    # cores slows every other test; the guard's own tests (test_verification_checks) set it.
    "analysis": {"window_s": 15, "interval_s": 3, "guard_s": 0},
    "deploy": {"health_timeout_s": 10},
    # A 4-user, 4 s load test on a shared 2-core machine swings its p95 by several times
    # between two releases of the same code (0.08 s -> 0.32 s seen): only a slowdown of
    # seconds counts here. The degradation gate itself is tested in tests/unit/test_perf.py.
    "thresholds": {"perf_degradation_floor_s": 2.0},
}


SCHEDULE_TIERS = ("tests/e2e/", "tests/flows/", "tests/integration/")
"""Under ``--dist loadgroup`` work units go out in this order, unit tests last: an e2e test
takes minutes, a unit test a fraction of a second, so the short ones fill the workers' ends."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Work units for ``make test`` (``--dist loadgroup``). A test file is one unit: its
    module fixtures and private ports stay on one worker. A file marked ``independent``
    gives each test its own unit, so the ten examples spread over the workers instead of
    queueing on one (they were 18 of the suite's 26 minutes on one worker). Units are
    ordered longest-first by a rough estimate (tier, then tests in the unit), since xdist
    hands them out in order and the last long unit sets the suite's end."""
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers only
        return
    sizes: dict[str, int] = {}
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            independent = item.get_closest_marker("independent") is not None
            item.add_marker(pytest.mark.xdist_group(
                item.nodeid if independent else item.nodeid.split("::")[0]))
        group = _group_of(item)
        sizes[group] = sizes.get(group, 0) + 1
    items.sort(key=lambda item: (_tier_of(item.nodeid), -sizes[_group_of(item)],
                                 _group_of(item)))


def _group_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    assert marker is not None
    return str(marker.args[0] if marker.args else marker.kwargs.get("name", "default"))


def _tier_of(nodeid: str) -> int:
    return next((index for index, prefix in enumerate(SCHEDULE_TIERS)
                 if nodeid.startswith(prefix)), len(SCHEDULE_TIERS))


@pytest.fixture(scope="session")
def stack_settings() -> StackSettings:
    from runbook import stack

    settings = StackSettings()
    statuses = stack.up(settings)
    unhealthy = [f"{s.name}: {s.detail}" for s in statuses if not s.healthy]
    assert not unhealthy, f"local stack not healthy: {unhealthy}"
    _remove_leftover_test_services(settings)
    return settings


@pytest.fixture(scope="session", autouse=True)
def _forget_own_services_at_exit() -> Iterator[None]:
    """Each test removes what it delivered; a finished session leaves no record behind."""
    yield
    _session_marker(StackSettings()).unlink(missing_ok=True)


def _session_marker(settings: StackSettings, pid: int | None = None) -> Path:
    """The file where a pytest run lists the services it delivered, one name a line: the
    only record cleanup trusts, so two runs on one stack never remove each other's."""
    return StateLayout(settings.state_dir).test_session(pid or os.getpid())


def _record_test_service(name: str) -> None:
    marker = _session_marker(StackSettings())
    marker.parent.mkdir(parents=True, exist_ok=True)
    with marker.open("a") as names:
        names.write(name + "\n")


def _remove_leftover_test_services(settings: StackSettings) -> None:
    """Services of an earlier, interrupted test session would keep their containers and
    route ports forever (and be restarted by every `stack up`). Only sessions whose process
    is gone are cleaned, and only of the services they recorded."""
    from runbook.stack.processes import process_alive

    sessions = StateLayout(settings.state_dir).test_sessions
    if not sessions.is_dir():
        return
    for marker in sessions.glob("*.services"):
        if process_alive(int(marker.stem)):
            continue
        _decommission(settings, set(marker.read_text().split()))
        marker.unlink(missing_ok=True)


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
        _record_test_service(spec["name"])
        spec["policy"] = policy if policy is not None else FAST_POLICY
        spec.update(spec_changes)
        (target / "service.yaml").write_text(yaml.safe_dump(spec))
        return target

    yield make
    if names:
        _decommission(StackSettings(), names)


def _decommission(settings: StackSettings, names: list[str] | set[str]) -> None:
    """Containers, routes and release records of test services, in both environments."""
    from runbook.release_record import ReleaseRecords, state_store
    from runbook.settings_root import RunbookSettings
    from runbook.targets import make_target

    deploy_target = make_target("docker", RunbookSettings.of(settings))
    records = ReleaseRecords(state_store(settings))
    for name in names:
        for environment in ("staging", "production"):
            deploy_target.decommission(name, environment)
            records.delete(name, environment)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL cluster for this test session (tests/postgres_cluster.py).
    Tests using it are `stack` tests: PostgreSQL is a real service."""
    from tests.postgres_cluster import postgres_cluster

    with postgres_cluster() as url:
        yield url
