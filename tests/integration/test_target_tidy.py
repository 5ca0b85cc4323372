"""``DeployTarget.tidy``: the previous color is scaled down after the keep-delay and still
serves a rollback (Kubernetes, through the real client against kmock); the docker target
keeps nothing past a delay."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from runbook.models import Slot
from runbook.policy import DeploySettings
from runbook.service import ServiceSpec
from runbook.settings import StackSettings
from runbook.targets.docker import DockerTarget
from runbook.targets.kubernetes import KubernetesTarget
from tests.kmock_cluster import Cluster
from tests.kube_target import image, kube_target

NS = "staging"
DELAY_S = 1.0  # short, so the test waits it out for real; the logic is the default 30 s's
SPEC = ServiceSpec.model_validate({"name": "agent-api", "port": 8080,
                                   "health_path": "/health", "replicas": 2})
DEPLOY = DeploySettings(health_timeout_s=5)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, KubernetesTarget]]:
    with kube_target(tmp_path, scale_down_delay_s=DELAY_S) as emulated:
        yield emulated


def release(target: KubernetesTarget, revision: str) -> Slot:
    slot = target.deploy_candidate(SPEC, NS, image(revision), DEPLOY)
    target.switch(slot, DEPLOY)
    return slot


def replicas(emulator: Cluster, color: str) -> int:
    deployment = emulator.get("deployments", NS, f"agent-api-{color}")
    assert deployment is not None
    return int(deployment["spec"]["replicas"])


def test_standby_keeps_its_replicas_until_the_delay_then_is_scaled_to_zero(cluster) -> None:
    emulator, target = cluster
    release(target, "aaa111")
    release(target, "bbb222")
    switched = time.monotonic()
    before = len(emulator.calls)

    early = target.tidy("agent-api", NS)

    assert time.monotonic() - switched < DELAY_S, "too slow to check before the delay"
    assert early == [] and replicas(emulator, "blue") == 2
    assert [c for c in emulator.calls[before:] if c.method != "GET"] == []

    time.sleep(max(0.0, DELAY_S - (time.monotonic() - switched)) + 0.05)
    before = len(emulator.calls)
    done = target.tidy("agent-api", NS)

    assert len(done) == 1 and "agent-api-blue (aaa111) to 0 replicas" in done[0]
    assert [(c.method, c.name, c.body) for c in emulator.calls[before:] if c.method != "GET"] \
        == [("PATCH", "agent-api-blue", {"spec": {"replicas": 0}})]
    assert replicas(emulator, "blue") == 0 and replicas(emulator, "green") == 2
    assert target.tidy("agent-api", NS) == []  # idempotent: nothing left to release


def test_rollback_still_works_after_the_standby_was_scaled_down(cluster) -> None:
    emulator, target = cluster
    release(target, "aaa111")
    candidate = release(target, "bbb222")
    time.sleep(DELAY_S + 0.05)
    assert target.tidy("agent-api", NS)

    previous = target.standby("agent-api", NS)
    assert previous is not None and previous.revision == "aaa111"
    target.switch(previous, DEPLOY)
    target.discard(candidate)

    live = target.live("agent-api", NS)
    assert live is not None and live.revision == "aaa111"
    assert replicas(emulator, "blue") == 2
    assert target.tidy("agent-api", NS) == []  # the live color is never tidied


def test_tidy_leaves_a_candidate_awaiting_promotion_alone(cluster) -> None:
    emulator, target = cluster
    release(target, "aaa111")
    time.sleep(DELAY_S + 0.05)
    target.deploy_candidate(SPEC, NS, image("bbb222"), DEPLOY)  # on the preview, not live

    assert target.tidy("agent-api", NS) == []
    assert replicas(emulator, "green") == 2


class Untouchable:
    """Any use of the engine or the router fails the test: tidy must not need them."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"tidy used {name}")


def test_docker_target_keeps_its_standby_container_as_the_instant_rollback() -> None:
    target = DockerTarget(StackSettings(), Untouchable(), Untouchable())  # type: ignore[arg-type]
    assert target.tidy("agent-api", "production") == []
