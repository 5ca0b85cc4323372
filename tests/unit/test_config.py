"""runbook.yaml: found, validated, overridden by the environment; no file = local stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.config import load_config
from runbook.errors import ConfigurationError

FULL = """
state: {url: "postgresql+psycopg://runbook@db.example/runbook", password_env: DB_PASSWORD}
environments:
  staging:
    target: docker
    registry:
      url: https://registry.example:5443
      username: ci
      password_env: REGISTRY_PASSWORD
      ca_file: /etc/ssl/registry-ca.pem
    prometheus:
      url: https://prometheus.example:9443
      username: runbook
      password_env: PROM_PASSWORD
      ca_file: /etc/ssl/prom-ca.pem
    kubernetes: {context: staging, namespace: agent-staging}
    endpoint: https://staging.agent.example
"""


def test_no_file_is_the_local_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_CONFIG", raising=False)
    (tmp_path / ".git").mkdir()
    config = load_config(cwd=tmp_path)
    assert config.source is None
    assert config.state.url is None
    assert config.environment("staging").registry is None


def test_found_at_the_repository_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_CONFIG", raising=False)
    (tmp_path / ".git").mkdir()
    (tmp_path / "runbook.yaml").write_text(FULL)
    nested = tmp_path / "services" / "api"
    nested.mkdir(parents=True)
    config = load_config(cwd=nested)
    staging = config.environment("staging")
    assert config.source == tmp_path / "runbook.yaml"
    assert staging.registry is not None and staging.registry.password_env == "REGISTRY_PASSWORD"
    assert staging.kubernetes is not None and staging.kubernetes.namespace == "agent-staging"
    assert config.environment("production").registry is None


def test_environment_variables_override_the_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(FULL)
    monkeypatch.setenv("RUNBOOK_CONFIG", str(path))
    monkeypatch.setenv("RUNBOOK__STATE__URL", "sqlite:////tmp/other.db")
    assert load_config().state.url == "sqlite:////tmp/other.db"


@pytest.mark.parametrize(("text", "names"), [
    ("environments: {staging: {registry: {url: 'http://r:5000'}}}", "insecure"),
    ("environments: {staging: {target: nomad}}", "environments.staging.target"),
    ("environments: {staging: {registry: {url: x, password: hunter2}}}", "password"),
    ("state: [1, 2]", "state"),
])
def test_bad_file_is_one_clear_error(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and names in message
    assert "hunter2" not in message
    assert "\n" not in message
