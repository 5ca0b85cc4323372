"""`--config`: the CLI checks only the parts the environment uses, before anything starts.
Nothing listens on 127.0.0.3:9 (discard port, closed here): an unreachable part."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = str(REPO / ".venv" / "bin" / "runbook")
UNREACHABLE = "https://127.0.0.3:9"
KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "remote",
    "clusters": [{"name": "remote", "cluster": {"server": UNREACHABLE}}],
    "users": [{"name": "remote", "user": {"token": "t"}}],
    "contexts": [{"name": "remote", "context": {"cluster": "remote", "user": "remote"}}],
}


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # A state directory with no stack in it: any use of the local stack would show.
    environment = {**os.environ, "RUNBOOK_STATE_DIR": str(tmp_path / "no-stack"),
                   "RUNBOOK_REGISTRY_PORT": "9", "RUNBOOK_PROMETHEUS_PORT": "9",
                   "PREFECT_API_URL": "http://127.0.0.3:9/api", **env}
    return subprocess.run([RUNBOOK, *args], capture_output=True, text=True, timeout=120,
                          env=environment, cwd=REPO)


def remote_config(tmp_path: Path) -> Path:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(KUBECONFIG))
    part = {"url": UNREACHABLE, "username": "ci", "password_env": "RB_TEST_PASSWORD"}
    config = tmp_path / "runbook.yaml"
    config.write_text(yaml.safe_dump({"environments": {"production": {
        "target": "kubernetes", "registry": part, "prometheus": part, "pushgateway": part,
        "kubernetes": {"kubeconfig": str(kubeconfig), "namespace": "agent-prod"}}}}))
    return config


def test_kubernetes_with_remote_parts_probes_them_and_not_the_local_stack(tmp_path: Path) -> None:
    image = f"127.0.0.3:9/agent-api@sha256:{'a' * 64}"
    result = run(tmp_path, "pipeline", "examples/agent-api", "--env", "production",
                 "--config", str(remote_config(tmp_path)), "--image", image,
                 RB_TEST_PASSWORD="pw-not-shown")
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"error: registry {UNREACHABLE} unreachable"), line
    assert "pw-not-shown" not in result.stdout + result.stderr
    assert "local stack" not in line


def test_a_missing_password_variable_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RB_TEST_PASSWORD"}
    result = subprocess.run(
        [RUNBOOK, "pipeline", "examples/agent-api", "--env", "production", "--config",
         str(remote_config(tmp_path))], capture_output=True, text=True, timeout=120,
        env={**env, "PREFECT_API_URL": "http://127.0.0.3:9/api"}, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: password of registry {UNREACHABLE}: environment "
                                     "variable RB_TEST_PASSWORD is not set")


def test_a_config_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    result = run(tmp_path, "status", "agent-api", "--env", "staging", "--config",
                 str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: configuration file not found"


def test_render_takes_the_namespace_from_the_configuration(tmp_path: Path) -> None:
    image = f"127.0.0.3:9/agent-api@sha256:{'b' * 64}"
    result = run(tmp_path, "render", "examples/agent-api", "--env", "production",
                 "--config", str(remote_config(tmp_path)), "--image", image)
    assert result.returncode == 0, result.stderr
    manifests = list(yaml.safe_load_all(result.stdout))
    assert {m["metadata"]["namespace"] for m in manifests} == {"agent-prod"}
