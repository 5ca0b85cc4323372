"""prefect.yaml: every deployment points at a real flow with parameters that flow accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in CONFIG["deployments"]}


def _pull_branch(deployment: dict[str, Any]) -> str | None:
    for step in deployment.get("pull", []):
        clone = step.get("prefect.deployments.steps.git_clone")
        if clone:
            return clone["branch"]
    return None


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_parameters_are_accepted_by_the_flow(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    flow = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
    parameters = dict(deployment["parameters"])
    if flow.name == "rollback":
        parameters["service"] = "agent-api"  # the one parameter given per run
    flow.validate_parameters(parameters)


def test_pipeline_per_environment_with_its_branch_on_the_cluster() -> None:
    for name, environment, branch in [("staging-cluster", "staging", "develop"),
                                      ("production-cluster", "production", "main")]:
        assert DEPLOYMENTS[name]["parameters"]["environment"] == environment
        assert _pull_branch(DEPLOYMENTS[name]) == branch
        assert DEPLOYMENTS[name]["work_pool"]["name"] == "runbook-kubernetes"
    for name in ("staging", "production"):
        assert DEPLOYMENTS[name]["parameters"]["environment"] == name
        assert DEPLOYMENTS[name]["work_pool"]["name"] == "runbook-local"


def test_production_is_blue_green_and_every_deployment_is_limited() -> None:
    for deployment in DEPLOYMENTS.values():
        if deployment["parameters"].get("environment") == "production" and \
                deployment["entrypoint"].endswith(":pipeline"):
            assert deployment["parameters"]["strategy"] == "blue-green"
        assert deployment["concurrency_limit"]["limit"] >= 1
        assert deployment["concurrency_limit"]["collision_strategy"] == "ENQUEUE"
