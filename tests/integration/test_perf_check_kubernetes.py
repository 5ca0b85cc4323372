"""The perf check's sequence on the kubernetes target (kmock, tests/kmock_cluster.py): the
live image borrows the idle color for the preview, the active Service is never written,
and the displaced standby is put back, off the preview, so a rollback still finds it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.models import ImageRef, Slot
from runbook.policy import DeploySettings
from runbook.service import ServiceSpec
from runbook.targets.kubernetes import KubernetesTarget
from tests.kmock_cluster import Cluster
from tests.kube_target import image, kube_target, selector_color

NS = "staging"
SPEC = ServiceSpec.model_validate({"name": "agent-api", "port": 8080,
                                   "health_path": "/health", "replicas": 2})
DEPLOY = DeploySettings(health_timeout_s=5)


def _image_of(slot: Slot) -> ImageRef:
    repository, _, digest = slot.image.partition("@")
    return ImageRef(repository=repository, tag=slot.revision, digest=digest)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, KubernetesTarget]]:
    with kube_target(tmp_path, scale_down_delay_s=3600) as emulated:
        yield emulated


def test_the_live_image_borrows_the_idle_color_and_the_standby_comes_back(cluster) -> None:
    emulator, target = cluster
    for revision in ("aaa111", "bbb222"):
        target.switch(target.deploy_candidate(SPEC, NS, image(revision), DEPLOY), DEPLOY)
    live, standby = target.live("agent-api", NS), target.standby("agent-api", NS)
    assert live is not None and standby is not None
    assert (live.color, live.revision, standby.revision) == ("green", "bbb222", "aaa111")
    active_writes = len(emulator.writes("services", "agent-api"))

    candidate = target.deploy_candidate(SPEC, NS, _image_of(live), DEPLOY)
    assert (candidate.color, candidate.revision) == ("blue", "bbb222")
    assert selector_color(emulator, NS, "agent-api-preview") == "blue"
    assert target.live("agent-api", NS) == live
    target.discard(candidate)
    restored = target.restore_standby(SPEC, NS, _image_of(standby), DEPLOY)

    assert (restored.color, restored.revision) == ("blue", "aaa111")
    assert selector_color(emulator, NS, "agent-api-preview") == "green"
    assert target.live("agent-api", NS) == live
    back = target.standby("agent-api", NS)
    assert back is not None and (back.color, back.revision) == ("blue", "aaa111")
    assert len(emulator.writes("services", "agent-api")) == active_writes  # no traffic moved
