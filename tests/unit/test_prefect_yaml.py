"""prefect.yaml: every deployment points at a real flow with parameters that flow accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "prefect.yaml").read_text())
PIPELINE = "flows/pipeline.py:pipeline"
DEPLOYMENTS = {d["entrypoint"] + "/" + d["name"]: d for d in CONFIG["deployments"]}


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
    # What is given per run (a service name, an incident id) has no default: fill it in.
    for name in flow.parameters.required:
        parameters.setdefault(name, "given-per-run")
    flow.validate_parameters(parameters)


def test_every_flow_has_its_deployment_and_names_are_unique_per_flow() -> None:
    flows = [load_flow_from_entrypoint(str(REPO / d["entrypoint"])).name
             for d in CONFIG["deployments"]]
    full_names = [f"{flow}/{d['name']}" for flow, d in zip(flows, CONFIG["deployments"],
                                                            strict=True)]
    assert len(set(full_names)) == len(full_names)
    assert {"pipeline", "rollback", "daily-health", "weekly-scan-review", "secret-rotation",
            "registry-cleanup", "base-image-check", "runbook-review", "production-outage",
            "security-incident", "resolve-incident", "tidy", "escalate-incidents",
            "review-incident"} <= set(flows)


def test_pipeline_per_environment_with_its_branch_on_the_cluster() -> None:
    for name, environment, branch in [(f"{PIPELINE}/staging-cluster", "staging", "develop"),
                                      (f"{PIPELINE}/production-cluster", "production", "main")]:
        assert DEPLOYMENTS[name]["parameters"]["environment"] == environment
        assert _pull_branch(DEPLOYMENTS[name]) == branch
        assert DEPLOYMENTS[name]["work_pool"]["name"] == "runbook-kubernetes"
    for environment in ("staging", "production"):
        deployment = DEPLOYMENTS[f"{PIPELINE}/{environment}"]
        assert deployment["parameters"]["environment"] == environment
        assert deployment["work_pool"]["name"] == "runbook-local"


def test_production_is_blue_green_and_every_deployment_is_limited() -> None:
    for deployment in DEPLOYMENTS.values():
        if deployment["parameters"].get("environment") == "production" and \
                deployment["entrypoint"].endswith(":pipeline"):
            assert deployment["parameters"]["strategy"] == "blue-green"
        assert deployment["concurrency_limit"]["limit"] >= 1
        assert deployment["concurrency_limit"]["collision_strategy"] == "ENQUEUE"
