"""Resolution of runbook.yaml over the local stack, secret references, and the pure parts
of the authenticated adapters (challenge parsing, refusal lines, --image references)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from runbook.adapters.access import refusal, tls_problem, transport_error
from runbook.adapters.registry import parse_challenge
from runbook.build import prebuilt_ref
from runbook.config import load_config
from runbook.errors import ConfigurationError, TransientError
from runbook.infra import (
    HttpService,
    credentials,
    docker_auth_config,
    public_endpoint,
    resolve,
)
from runbook.kube.settings import KubernetesSettings
from runbook.models import TargetKind
from runbook.secretref import Credentials, SecretRef, docker_config_credentials, reveal
from runbook.settings import StackSettings

SECRET = "s3cret-value-never-shown"
DIGEST = "sha256:" + "ab" * 32


def settings_with(tmp_path: Path, environments: dict) -> StackSettings:
    path = tmp_path / "runbook.yaml"
    path.write_text(yaml.safe_dump({"environments": environments}))
    return StackSettings(configuration=load_config(path))


def test_no_file_resolves_every_part_to_the_local_stack(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNBOOK_CONFIG", raising=False)
    settings = StackSettings()
    infra = resolve(settings, "staging")
    assert infra.target is TargetKind.DOCKER
    assert infra.registry.url == f"http://{settings.registry}" and infra.registry.local
    assert infra.prometheus.url == settings.prometheus_url
    assert infra.pushgateway.url == settings.pushgateway_url
    assert infra.local_components(builds=True) == ["docker", "router", "registry",
                                                  "prometheus", "pushgateway"]


def test_an_environment_moves_one_part_and_keeps_the_rest_local(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"staging": {"registry": {
        "url": "https://registry.example:5443/", "username": "ci",
        "password_env": "REGISTRY_PASSWORD", "ca_file": "/etc/ssl/ca.pem"}}})
    staging = resolve(settings, "staging")
    assert staging.registry.url == "https://registry.example:5443"
    assert staging.registry.host == "registry.example:5443"
    assert staging.registry.verify == "/etc/ssl/ca.pem" and not staging.registry.local
    assert staging.prometheus.local and staging.pushgateway.local
    assert resolve(settings, "production").registry.local  # not named: all local


def test_kubernetes_with_remote_parts_needs_nothing_of_the_local_stack(tmp_path: Path) -> None:
    remote = {"url": "https://x.example", "username": "u", "password_env": "P"}
    settings = settings_with(tmp_path, {"production": {
        "target": "kubernetes", "registry": remote, "prometheus": remote, "pushgateway": remote,
        "kubernetes": {"context": "prod", "namespace": "agent-prod"}}})
    infra = resolve(settings, "production")
    assert infra.target is TargetKind.KUBERNETES
    assert infra.local_components(builds=False) == []
    assert infra.local_components(builds=True) == ["docker"]  # building needs an engine
    assert resolve(settings, "production", "docker").target is TargetKind.DOCKER  # flag wins
    kube = KubernetesSettings().for_environment(infra)
    assert kube.context == "prod" and kube.namespace("production") == "agent-prod"
    assert kube.prometheus_url == "https://x.example"


def test_endpoint_pattern_names_the_service(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, {"staging": {"endpoint": "https://{service}.stg.example/"}})
    assert public_endpoint(resolve(settings, "staging"), "agent-api") == \
        "https://agent-api.stg.example"
    assert public_endpoint(resolve(settings, "production"), "agent-api") is None


def test_plain_http_registry_must_be_said_insecure(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="insecure: true"):
        settings_with(tmp_path, {"staging": {"registry": {"url": "http://r.example:5000"}}})


def test_secret_from_the_environment_is_a_secretstr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", SECRET)
    value = reveal(SecretRef(kind="env", name="REGISTRY_PASSWORD"), "password of registry x")
    assert value.get_secret_value() == SECRET
    assert SECRET not in repr(value) and SECRET not in str(value)


def test_a_missing_secret_names_the_variable_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(ConfigurationError) as raised:
        reveal(SecretRef(kind="env", name="NOPE"), "password of registry https://r")
    assert str(raised.value) == "password of registry https://r: environment variable NOPE " \
                                "is not set"


@pytest.mark.parametrize("entry", [
    {"auth": base64.b64encode(f"ci:{SECRET}".encode()).decode()},
    {"username": "ci", "password": SECRET},
])
def test_docker_config_auths_entry(tmp_path: Path, entry: dict) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"https://registry.example:5443": entry}}))
    found = docker_config_credentials(config, "registry.example:5443", "registry")
    assert found is not None and found.username == "ci"
    assert found.password.get_secret_value() == SECRET
    assert docker_config_credentials(config, "other:5000", "registry") is None


def test_a_broken_docker_config_entry_never_shows_its_content(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"r:1": {"auth": SECRET}}}))
    with pytest.raises(ConfigurationError) as raised:
        docker_config_credentials(config, "r:1", "registry r")
    assert SECRET not in str(raised.value)


def test_registry_credentials_from_reference(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("RP", SECRET)
    service = HttpService(part="registry", url="https://r:1", username="ci",
                          password=SecretRef(kind="env", name="RP"))
    assert docker_auth_config(service) == {"username": "ci", "password": SECRET}
    assert SECRET not in repr(service) and SECRET not in service.model_dump_json()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no config.json there: anonymous
    assert credentials(HttpService(part="registry", url="https://r:1")) is None
    with pytest.raises(ConfigurationError, match="no password source"):
        credentials(HttpService(part="prometheus", url="https://p", username="u"))


def test_bearer_challenge_is_parsed_with_commas_inside_quotes() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:team/api:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:team/api:pull,push"}
    assert parse_challenge('Basic realm="runbook"') == ("basic", {"realm": "runbook"})


def test_refusals_name_the_part_and_the_user_only() -> None:
    login = Credentials("ci", SecretStr(SECRET))
    assert refusal("registry https://r:1", 401, f"user {login.username}") == \
        "registry https://r:1: authentication failed (401) for user ci"
    assert "required" in refusal("prometheus https://p", 401, None)
    assert refusal("pushgateway https://g", 403, None) == \
        "pushgateway https://g: access denied (403) for anonymous access"


def test_certificate_errors_are_configuration_and_the_rest_transient() -> None:
    import ssl

    inner = ssl.SSLCertVerificationError("verify failed")
    inner.verify_message = "unable to get local issuer certificate"
    wrapper = OSError("connect failed")
    wrapper.__cause__ = inner
    problem = tls_problem("registry https://r:1", wrapper)
    assert isinstance(problem, ConfigurationError) and problem.hint is not None
    assert "set ca_file" in problem.hint and "not trusted" in str(problem)
    assert isinstance(transport_error("registry https://r:1", ConnectionRefusedError()),
                      TransientError)


def test_prebuilt_reference_must_be_a_digest_in_the_environment_registry() -> None:
    image = prebuilt_ref(f"r.example:5443/team/api@{DIGEST}", "r.example:5443")
    assert image.repository == "r.example:5443/team/api" and image.digest == DIGEST
    assert image.revision == "ab" * 6 and image.by_digest.endswith(DIGEST)
    with pytest.raises(ConfigurationError, match="REPOSITORY@sha256"):
        prebuilt_ref("r.example:5443/api:latest", "r.example:5443")
    with pytest.raises(ConfigurationError, match="not in the environment's registry"):
        prebuilt_ref(f"elsewhere:5000/api@{DIGEST}", "r.example:5443")
