"""`prefect deploy --all` against the local Prefect server registers every deployment of
prefect.yaml with its parameters, schedules, work pool and concurrency limit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.flows import load_flow_from_entrypoint

from runbook.prefork import flow_run_command
from runbook.settings import StackSettings

REPO = Path(__file__).resolve().parents[2]
PREFECT = REPO / ".venv" / "bin" / "prefect"
K8S_TEMPLATE = REPO / "deployments" / "prefect-at-scale" / "kubernetes-work-pool.json"

pytestmark = pytest.mark.stack


def _prefect(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PREFECT), "--no-prompt", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=True)


def test_deploy_all_registers_every_deployment(stack_settings: StackSettings) -> None:
    # The server the in-process client uses (conftest: the stack's unless PREFECT_API_URL).
    env = {**os.environ, "PREFECT_API_URL": os.environ["PREFECT_API_URL"],
           "RUNBOOK_FLOW_IMAGE": "127.0.0.1:5000/runbook-flows:test",
           "RUNBOOK_GIT_REPOSITORY": f"file://{REPO}"}
    _prefect("work-pool", "create", "runbook-local", "--type", "process", "--overwrite", env=env)
    _prefect("work-pool", "create", "runbook-kubernetes", "--type", "kubernetes",
             "--base-job-template", str(K8S_TEMPLATE), "--overwrite", env=env)
    _prefect("deploy", "--all", env=env)

    expected = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    with get_client(sync_client=True) as client:
        assert client.read_work_pool("runbook-local").type == "process"
        cluster_pool = client.read_work_pool("runbook-kubernetes")
        assert cluster_pool.type == "kubernetes"
        assert cluster_pool.base_job_template["variables"]["properties"]["namespace"][
            "default"] == "runbook"
        assert any(spec.get("schedules") for spec in expected)
        for spec in expected:
            flow_name = load_flow_from_entrypoint(str(REPO / spec["entrypoint"])).name
            deployment = client.read_deployment_by_name(f"{flow_name}/{spec['name']}")
            assert deployment.parameters == spec["parameters"], spec["name"]
            assert deployment.work_pool_name == spec["work_pool"]["name"]
            assert [(s.schedule.cron, s.schedule.timezone, s.active)
                    for s in deployment.schedules] == [
                (s["cron"], s["timezone"], True) for s in spec.get("schedules", [])]
            assert deployment.global_concurrency_limit is not None
            assert deployment.global_concurrency_limit.limit == spec["concurrency_limit"]["limit"]
            assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
            if spec["work_pool"]["name"] == "runbook-local":
                # Forked from the prefork server (runbook/prefork.py), this interpreter's.
                assert deployment.job_variables["command"] == flow_run_command()["command"]
            if spec["work_pool"]["name"] == "runbook-kubernetes":
                assert deployment.job_variables["image"] == "127.0.0.1:5000/runbook-flows:test"
                clone = deployment.pull_steps[0]["prefect.deployments.steps.git_clone"]
                assert clone["repository"] == f"file://{REPO}"
