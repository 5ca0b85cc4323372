"""The worker's Role grants exactly what the kubernetes target calls: every request of a
full scenario (blue-green, rollback, diagnostics, rolling undo, secret rotation,
decommission) is mapped to
its RBAC (apiGroup, resource, verb) and compared with deployments/kubernetes/rbac.yaml."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from runbook.errors import RolloutFailed
from tests.integration.test_kubernetes_target import (  # noqa: F401 (fixture)
    DEPLOY,
    NS,
    SPEC,
    cluster,
    image,
    release,
)
from tests.kmock_cluster import Call, rolled_out, stuck_on

RBAC = Path(__file__).resolve().parents[2] / "deployments" / "kubernetes" / "rbac.yaml"
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def permission(call: Call) -> tuple[str, str, str]:
    group = "apps" if call.resource == "deployments" else ""
    resource = f"{call.resource}/{call.subresource}" if call.subresource else call.resource
    verb = VERBS.get(call.method) or ("get" if call.name else "list")
    return group, resource or "", verb


def granted() -> set[tuple[str, str, str]]:
    documents = list(yaml.safe_load_all(RBAC.read_text()))
    role = next(d for d in documents if d["kind"] == "Role")
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_role_covers_exactly_what_the_target_calls(cluster) -> None:  # noqa: F811
    emulator, target = cluster
    release(target, "aaa111")
    candidate = release(target, "bbb222")
    target.scale_down_standby("agent-api", NS)
    target.switch(target.standby("agent-api", NS), DEPLOY)
    target.discard(candidate)
    target.rolling_update(SPEC, NS, image("ccc333"), DEPLOY)
    emulator.controller = stuck_on("ddd444")
    with pytest.raises(RolloutFailed):
        target.rolling_update(SPEC, NS, image("ddd444"), DEPLOY)
    emulator.controller = rolled_out
    rotation = target.secret_publisher(SPEC, NS, DEPLOY)
    rotation.publish({"API_TOKENS": "new,old"})  # creates the Secret, restarts the live pods
    rotation.revoke({"API_TOKENS": "new"})  # replaces it, retires the standby
    target.decommission("agent-api", NS)
    assert {permission(call) for call in emulator.calls} == granted()


def test_rbac_manifests_are_valid_and_namespaced() -> None:
    for document in yaml.safe_load_all(RBAC.read_text()):
        kubernetes_validate.validate(document, "1.30", strict=True)
        assert document["metadata"]["namespace"]
        assert document["kind"] != "ClusterRole"
