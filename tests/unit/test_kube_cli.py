"""`runbook render` prints valid manifests; bad input for the kubernetes target is one line
and exit code 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = str(REPO / ".venv" / "bin" / "runbook")
IMAGE = "127.0.0.1:5000/agent-api@sha256:" + "c" * 64


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNBOOK, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, cwd=REPO)


def test_render_prints_valid_manifests_for_the_environment_namespace() -> None:
    result = run("render", "examples/agent-api", "--env", "production", "--image", IMAGE,
                 RUNBOOK_K8S_NAMESPACES='{"production": "apps-prod"}')
    assert result.returncode == 0, result.stderr
    manifests = list(yaml.safe_load_all(result.stdout))
    assert [m["kind"] for m in manifests] == ["Deployment", "Service", "Service"]
    assert "&id" not in result.stdout  # plain YAML, no anchors, for GitOps diffs
    for manifest in manifests:
        assert manifest["metadata"]["namespace"] == "apps-prod"
        kubernetes_validate.validate(manifest, "1.30", strict=True)


def test_render_refuses_an_image_without_digest() -> None:
    result = run("render", "examples/agent-api", "--env", "staging", "--image", "agent-api:1")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "sha256" in result.stderr


def test_pipeline_on_kubernetes_with_a_bad_kubeconfig_is_bad_input(tmp_path: Path) -> None:
    result = run("pipeline", "examples/agent-api", "--env", "staging", "--target",
                 "kubernetes", RUNBOOK_K8S_KUBECONFIG=str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: kubernetes: no usable cluster configuration")
