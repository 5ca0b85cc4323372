"""service.yaml loading: valid input, and one clear message naming the field otherwise."""

from pathlib import Path

import pytest

from runbook.errors import ConfigurationError
from runbook.service import load_service

REPO = Path(__file__).resolve().parents[2]


def make_service(tmp_path: Path, yaml_text: str, dockerfile: bool = True) -> Path:
    (tmp_path / "service.yaml").write_text(yaml_text)
    if dockerfile:
        (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def test_sample_service_loads() -> None:
    service = load_service(REPO / "examples" / "agent-api")
    assert service.spec.name == "agent-api"
    assert service.spec.port == 8080
    assert service.spec.test is not None


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="service directory not found"):
        load_service(tmp_path / "nope")


def test_missing_service_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"service.yaml: missing"):
        load_service(tmp_path)


def test_missing_dockerfile(tmp_path: Path) -> None:
    make_service(tmp_path, "name: a\nport: 80\n", dockerfile=False)
    with pytest.raises(ConfigurationError, match="missing Dockerfile"):
        load_service(tmp_path)


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("name: Not_DNS\nport: 80\n", "field 'name'"),
        ("name: a\nport: 0\n", "field 'port'"),
        ("name: a\n", "field 'port'"),
        ("name: a\nport: 80\nhealth_path: health\n", "field 'health_path'"),
        ("name: a\nport: 80\ntraffic:\n  paths: [api]\n", "field 'traffic.paths'"),
        ("name: a\nport: 80\nbogus: 1\n", "field 'bogus'"),
        ("name: a\nport: 80\npolicy:\n  thresholds:\n    nope: 1\n",
         "field 'policy.thresholds.nope'"),
        ("name: a\nport: 80\nenvironments:\n  qa: {}\n", "field 'environments'"),
    ],
)
def test_invalid_spec_names_the_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    make_service(tmp_path, yaml_text)
    with pytest.raises(ConfigurationError) as info:
        load_service(tmp_path)
    assert field in str(info.value)
    assert "\n" not in str(info.value)


def test_not_yaml(tmp_path: Path) -> None:
    make_service(tmp_path, "name: [unclosed\n")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_service(tmp_path)


def test_policy_layers_environment_over_service_over_defaults(tmp_path: Path) -> None:
    make_service(tmp_path, """
name: a
port: 80
policy:
  thresholds: {rollback_error_rate: 0.02}
  analysis: {window_s: 12}
environments:
  production:
    analysis: {window_s: 60}
""")
    spec = load_service(tmp_path).spec
    staging, production = spec.policy_for("staging"), spec.policy_for("production")
    assert staging.thresholds.rollback_error_rate == 0.02
    assert production.thresholds.rollback_error_rate == 0.02
    assert staging.analysis.window_s == 12
    assert production.analysis.window_s == 60
    assert staging.thresholds.gate_avg_latency_s == 2.0  # runbook default
