"""Rendered manifests validate against the Kubernetes schemas; rollout status follows
kubectl's rules (pure functions, no cluster)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from runbook.kube.manifests import ColorDeployment, render_all, render_deployment
from runbook.kube.rollout import RolloutPhase, rollout_status
from runbook.service import ServiceSpec

SPEC = ServiceSpec.model_validate({
    "name": "agent-api", "port": 8080, "health_path": "/health", "replicas": 3,
    "resources": {"memory_mb": 256, "cpus": 0.25},
})
IMAGE = "127.0.0.1:5000/agent-api@sha256:" + "a" * 64


@pytest.mark.parametrize("spec", [SPEC, ServiceSpec(name="bare", port=80)])
def test_every_rendered_manifest_validates(spec: ServiceSpec) -> None:
    manifests = render_all(spec, "production", "production", "abc123", IMAGE, 60)
    assert [m["kind"] for m in manifests] == ["Deployment", "Service", "Service"]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.30", strict=True)


def test_deployment_carries_what_the_runbook_asks_for() -> None:
    model = ColorDeployment.of(SPEC, "staging", "staging", "green", "abc123", IMAGE, 90)
    deployment = render_deployment(model)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["template"]["metadata"]["labels"]["revision"] == "abc123"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "agent-api", "color": "green"}
    assert container["image"] == IMAGE
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert container["resources"]["requests"] == {"memory": "256Mi", "cpu": "250m"}
    assert deployment["spec"]["progressDeadlineSeconds"] == 90
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_same_inputs_render_the_same_spec_hash() -> None:
    model = ColorDeployment.of(SPEC, "staging", "staging", "blue", "abc123", IMAGE, 60)
    other = model.model_copy(update={"image": IMAGE.replace("a" * 64, "b" * 64)})
    first, again = render_deployment(model), render_deployment(model)
    assert first == again
    assert render_deployment(other)["metadata"]["annotations"]["runbook.io/spec-hash"] != \
        first["metadata"]["annotations"]["runbook.io/spec-hash"]


def deployment(status: dict) -> dict:
    return {"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": status}


@pytest.mark.parametrize(("status", "phase", "words"), [
    ({"observedGeneration": 1}, RolloutPhase.PROGRESSING, "not observed generation 2"),
    ({"observedGeneration": 2, "updatedReplicas": 1}, RolloutPhase.PROGRESSING, "1 of 3"),
    ({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4, "readyReplicas": 3},
     RolloutPhase.PROGRESSING, "old replicas"),
    ({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "readyReplicas": 2},
     RolloutPhase.PROGRESSING, "2 of 3 updated replicas ready"),
    ({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "readyReplicas": 3},
     RolloutPhase.DONE, "3 replicas"),
    ({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False",
                                               "reason": "ProgressDeadlineExceeded",
                                               "message": "timed out"}]},
     RolloutPhase.FAILED, "ProgressDeadlineExceeded: timed out"),
])
def test_rollout_status(status: dict, phase: RolloutPhase, words: str) -> None:
    result = rollout_status(deployment(status))
    assert result.phase is phase
    assert words in result.message
