"""``runbook init``: set a repository up to use runbook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError

from runbook.config import load_config
from runbook.errors import ConfigurationError
from runbook.github_workflows import WORKFLOWS_DIR, WorkflowSettings, install_workflows
from runbook.service import load_service

init_app = typer.Typer(help="Set a repository up to use runbook.", no_args_is_help=True)

NEXT_STEPS = """\
Next: in the repository's Settings > Secrets and variables > Actions set the secrets
PREFECT_API_URL (and PREFECT_API_AUTH_STRING, REGISTRY_PASSWORD); create the environments
`staging` and `production` and give `production` its protection rules (required
reviewers). Each workflow's header says what it runs; its `env` block holds the settings."""


@init_app.command("github")
def github(
    directory: Annotated[Path, typer.Option(
        "--dir", help="The repository's root directory")] = Path("."),
    service_dir: Annotated[str, typer.Option(
        help="The service directory, relative to the repository root")] = ".",
    registry: Annotated[str | None, typer.Option(
        help="host[:port] CI pushes images to; default runbook.yaml's staging registry, "
             "none: CI pushes nothing and the run builds")] = None,
    registry_username: Annotated[str | None, typer.Option(
        help="Registry login; default runbook.yaml's")] = None,
    force: Annotated[bool, typer.Option(
        help="Replace workflows that differ from these")] = False,
) -> None:
    """Write runbook's GitHub Actions workflows (ci, deploy, performance, security,
    monitoring) into .github/workflows/."""
    if not directory.is_dir():
        raise ConfigurationError(f"--dir {directory}: not a directory")
    load_service(directory / service_dir)
    configured = load_config(cwd=directory).environment("staging").registry
    try:
        settings = WorkflowSettings(
            service_dir=service_dir,
            registry=registry if registry is not None else (
                urlsplit(configured.url).netloc if configured else ""),
            registry_username=registry_username if registry_username is not None else (
                (configured.username or "") if configured else ""))
    except ValidationError as exc:
        raise ConfigurationError(exc.errors()[0]["msg"]) from None
    for installed in install_workflows(directory, settings, force=force):
        typer.echo(f"{installed.action.value:9} {installed.path.relative_to(directory)}")
    typer.echo(f"\nworkflows in {directory / WORKFLOWS_DIR}.\n{NEXT_STEPS}")
