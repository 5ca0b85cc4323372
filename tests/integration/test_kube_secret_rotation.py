"""Secret rotation published to a cluster (kmock over real HTTP, tests/kmock_cluster.py):
the Secret holds old and new during the overlap, only the new after revocation; every
publish restarts the live Deployment; a fault before revocation keeps the old value."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbook.errors import TransientError
from runbook.kube.manifests import RESTARTED_AT
from runbook.ops.rotation import Action, Step
from runbook.secrets.rotate import rotate
from runbook.secrets.store import SecretStore
from runbook.service import ServiceSpec
from runbook.targets.kubernetes import KubernetesTarget
from tests.integration.test_kubernetes_target import (  # noqa: F401 (fixture)
    NS,
    cluster,
    image,
)
from tests.kmock_cluster import Cluster, Fault

SPEC = ServiceSpec.model_validate({
    "name": "agent-api", "port": 8080, "health_path": "/health", "replicas": 2,
    "secrets": [{"name": "api-tokens", "env": "API_TOKENS", "generator": "token"}],
})


def secret_values(emulator: Cluster) -> list[str]:
    secret = emulator.get("secrets", NS, "agent-api-secrets")
    assert secret is not None
    return base64.b64decode(secret["data"]["API_TOKENS"]).decode().split(",")


def restarted_at(emulator: Cluster, name: str = "agent-api-blue") -> str | None:
    deployment = emulator.get("deployments", NS, name)
    assert deployment is not None
    return (deployment["spec"]["template"]["metadata"].get("annotations") or {}).get(
        RESTARTED_AT)


@pytest.fixture
def live(cluster) -> Iterator[tuple[Cluster, KubernetesTarget]]:  # noqa: F811
    emulator, target = cluster
    slot = target.deploy_candidate(SPEC, NS, image("aaa111"), SPEC.policy_for(NS).deploy)
    target.switch(slot, SPEC.policy_for(NS).deploy)
    yield emulator, target


def run(target: KubernetesTarget, store: SecretStore, grace_s: float = 0.0,
        force: bool = False):
    publisher = target.secret_publisher(SPEC, NS, SPEC.policy_for(NS).deploy)
    return rotate(SPEC.secrets, store, publisher, lambda: datetime.now(UTC), grace_s, force)


def test_deployments_read_the_secret_by_key(live) -> None:
    emulator, _ = live
    container = emulator.get("deployments", NS, "agent-api-blue")["spec"]["template"][
        "spec"]["containers"][0]
    assert container["env"] == [{"name": "API_TOKENS", "valueFrom": {"secretKeyRef": {
        "name": "agent-api-secrets", "key": "API_TOKENS", "optional": True}}}]


def test_rotation_publishes_both_values_then_only_the_new_one_restarting_each_time(
        live, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    emulator, target = live
    store = SecretStore(tmp_path, "agent-api", NS)
    caplog.set_level(logging.DEBUG)
    first = run(target, store, force=True)  # no value yet: the first one is made and published
    assert first[0].actions[-1] is Action.FINISH
    old = secret_values(emulator)
    assert len(old) == 1
    restart_one = restarted_at(emulator)
    assert restart_one is not None

    stopped = run(target, store, grace_s=3600, force=True)  # stops in the grace period
    assert stopped[0].step is Step.VERIFIED
    overlap = secret_values(emulator)
    assert overlap[1:] == old and len(overlap) == 2  # new first, old still valid
    restart_two = restarted_at(emulator)
    assert restart_two not in (None, restart_one)

    secret_writes = [c.method for c in emulator.writes("secrets")]
    finished = run(target, store, grace_s=0)
    assert finished[0].actions == [Action.REVOKE, Action.FINISH]
    assert secret_values(emulator) == overlap[:1]  # only the new value
    assert restarted_at(emulator) not in (None, restart_two)
    assert [c.method for c in emulator.writes("secrets")] == [*secret_writes, "PUT"]
    assert secret_writes[0] == "POST"
    values = {*old, *overlap}
    assert not any(v in record.getMessage() for record in caplog.records for v in values)


def test_a_fault_between_publish_and_revoke_leaves_the_old_value_published(
        live, tmp_path: Path) -> None:
    emulator, target = live
    store = SecretStore(tmp_path, "agent-api", NS)
    run(target, store, force=True)
    old = secret_values(emulator)
    run(target, store, grace_s=3600, force=True)  # overlap published, grace running
    overlap = secret_values(emulator)
    emulator.faults.append(Fault("PUT", "secrets", 503, times=10))  # every try at revoking
    with pytest.raises(TransientError):
        run(target, store, grace_s=0)
    assert secret_values(emulator) == overlap and overlap[1:] == old  # old still accepted
    assert store.load()["api-tokens"].state.step is Step.VERIFIED  # revoke not recorded
    emulator.faults.clear()

    resumed = run(target, store, grace_s=0)
    assert resumed[0].actions == [Action.REVOKE, Action.FINISH]
    assert secret_values(emulator) == overlap[:1]
