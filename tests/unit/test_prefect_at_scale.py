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
