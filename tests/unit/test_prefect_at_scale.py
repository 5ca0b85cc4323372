"""The at-scale manifests are valid Kubernetes and agree with prefect.yaml and the pool."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCALE = REPO / "deployments" / "prefect-at-scale"
DOCS = [(path.name, doc) for path in sorted(SCALE.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(("name", "doc"), DOCS,
                         ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in DOCS])
def test_manifest_is_valid(name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, "1.31", strict=True)


def _find(kind: str, name: str) -> dict:
    return next(d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def test_worker_serves_the_cluster_pool_and_flow_runs_have_their_account() -> None:
    pools = {d["work_pool"]["name"] for d in
             yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    worker = _find("Deployment", "prefect-worker")["spec"]["template"]["spec"]
    command = worker["containers"][0]["command"]
    assert command[command.index("--pool") + 1] in pools
    template = json.loads((SCALE / "kubernetes-work-pool.json").read_text())
    account = template["variables"]["properties"]["service_account_name"]["default"]
    namespace = template["variables"]["properties"]["namespace"]["default"]
    _find("ServiceAccount", account)
    binding = _find("RoleBinding", account)
    assert binding["metadata"]["namespace"] == namespace
    assert _find("RoleBinding", "prefect-worker")["metadata"]["namespace"] == namespace


def test_server_reads_its_database_url_from_a_secret() -> None:
    server = _find("Deployment", "prefect-server")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in server["env"]}
    url = env["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert "value" not in url and url["valueFrom"]["secretKeyRef"]["name"] == "prefect-database"


# -- flow runs on the pool: configuration from the ConfigMap, secrets from the Secret -------

def _pool_template() -> dict:
    return json.loads((SCALE / "kubernetes-work-pool.json").read_text())


def _rendered_job() -> dict:
    """The Job a worker submits: the template filled with its variables' defaults, and the
    flow run's own variables prepended to the container's env (as prefect-kubernetes does
    when ``env`` is a list)."""
    from prefect.utilities.templating import apply_values

    template = _pool_template()
    values = {name: spec["default"]
              for name, spec in template["variables"]["properties"].items()
              if "default" in spec}
    values.update(name="pipeline-run", image="registry.example.com/runbook-flows:1",
                  command="prefect flow-run execute", labels={"app": "runbook"},
                  env={"PREFECT_API_URL": "http://prefect-server.prefect:4200/api"})
    job = apply_values(template["job_configuration"], values)["job_manifest"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": k, "value": v} for k, v in values["env"].items()] + \
        container["env"]
    container["args"] = container["args"].split()
    return job


def test_the_pool_job_is_a_valid_job_with_config_and_secrets() -> None:
    job = _rendered_job()
    kubernetes_validate.validate(job, "1.31", strict=True)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    config_path = Path(env["RUNBOOK_CONFIG"])
    config_mount = next(m for m in mounts.values() if m["mountPath"] == str(config_path.parent))
    assert config_mount["readOnly"] is True
    config_map = volumes[config_mount["name"]]["configMap"]["name"]
    assert config_path.name in _find("ConfigMap", config_map)["data"]

    assert container["envFrom"] == [{"secretRef": {"name": "runbook-secrets"}}]
    _find("Secret", "runbook-secrets")
    # What stays on the pod's disk is scratch (Locust's CSV, charts): an emptyDir.
    scratch = next(m for m in mounts.values() if m["mountPath"] == env["RUNBOOK_STATE_DIR"])
    assert "emptyDir" in volumes[scratch["name"]]
    assert env["PREFECT_API_URL"]  # the flow run's own variables still reach the pod


def test_the_configured_runbook_yaml_needs_no_local_path_and_names_only_secrets_it_has(
    tmp_path: Path,
) -> None:
    from runbook.config import load_config

    text = _find("ConfigMap", "runbook-config")["data"]["runbook.yaml"]
    (tmp_path / "runbook.yaml").write_text(text)
    config = load_config(tmp_path / "runbook.yaml")
    assert config.state.url and config.state.url.startswith("postgresql")
    assert set(config.environments) == {"staging", "production"}
    secret_keys = set(_find("Secret", "runbook-secrets")["stringData"])
    named = {config.state.password_env}
    for environment in config.environments.values():
        assert environment.target == "kubernetes"
        assert environment.registry and environment.prometheus and environment.endpoint
        assert environment.kubernetes and environment.kubernetes.kubeconfig is None
        assert environment.kubernetes.namespace
        named |= {environment.registry.password_env, environment.prometheus.password_env}
    assert None not in named and named <= secret_keys


def test_the_worker_writes_the_pool_with_runbooks_template_before_it_starts() -> None:
    worker = _find("Deployment", "prefect-worker")["spec"]["template"]["spec"]
    pool = worker["containers"][0]["command"]
    pool_name = pool[pool.index("--pool") + 1]
    init = worker["initContainers"][0]
    command = init["command"]
    assert command[command.index("create") + 1] == pool_name
    assert "--overwrite" in command
    template_path = Path(command[command.index("--base-job-template") + 1])
    assert template_path.name == "kubernetes-work-pool.json"
    mount = next(m for m in init["volumeMounts"] if m["mountPath"] == str(template_path.parent))
    volume = next(v for v in worker["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "runbook-work-pool"
