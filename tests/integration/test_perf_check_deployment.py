"""The perf check's deployments of prefect.yaml register on the Prefect server, and the
cluster pool accepts runbook's base job template (config and secrets for each flow run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client

from runbook.settings import StackSettings

REPO = Path(__file__).resolve().parents[2]
PREFECT = REPO / ".venv" / "bin" / "prefect"
K8S_TEMPLATE = REPO / "deployments" / "prefect-at-scale" / "kubernetes-work-pool.json"
IMAGE = "127.0.0.1:5000/runbook-flows:test"

pytestmark = pytest.mark.stack


def _prefect(*args: str, env: dict[str, str]) -> None:
    subprocess.run([str(PREFECT), "--no-prompt", *args], cwd=REPO, env=env,
                   capture_output=True, text=True, timeout=180, check=True)


def test_perf_check_deployments_register(stack_settings: StackSettings) -> None:
    env = {**os.environ, "PREFECT_API_URL": os.environ["PREFECT_API_URL"],
           "RUNBOOK_FLOW_IMAGE": IMAGE, "RUNBOOK_GIT_REPOSITORY": f"file://{REPO}"}
    _prefect("work-pool", "create", "runbook-local", "--type", "process", "--overwrite", env=env)
    _prefect("work-pool", "create", "runbook-kubernetes", "--type", "kubernetes",
             "--base-job-template", str(K8S_TEMPLATE), "--overwrite", env=env)
    _prefect("deploy", "--name", "perf-check/nightly", "--name", "perf-check/nightly-cluster",
             env=env)

    specs = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())[
        "deployments"] if d["entrypoint"] == "flows/perf_check.py:perf_check"}
    with get_client(sync_client=True) as client:
        local = client.read_deployment_by_name("perf-check/nightly")
        assert local.parameters == specs["nightly"]["parameters"]
        assert local.parameters["environment"] == "staging"
        assert local.work_pool_name == "runbook-local"
        assert local.entrypoint == "flows/perf_check.py:perf_check"
        assert local.schedules == []  # performance.yml schedules it

        cluster = client.read_deployment_by_name("perf-check/nightly-cluster")
        assert cluster.parameters["target"] == "kubernetes"
        assert cluster.work_pool_name == "runbook-kubernetes"
        assert cluster.job_variables["image"] == IMAGE
        clone = cluster.pull_steps[0]["prefect.deployments.steps.git_clone"]
        assert clone["branch"] == "develop"

        template = client.read_work_pool("runbook-kubernetes").base_job_template
        container = template["job_configuration"]["job_manifest"]["spec"]["template"][
            "spec"]["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "runbook-secrets"}}]
        assert {"name": "RUNBOOK_CONFIG", "value": "/etc/runbook/runbook.yaml"} in \
            container["env"]
