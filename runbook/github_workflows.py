"""The GitHub Actions workflows runbook ships (``runbook/templates/github/``, package data,
so an installed runbook has them) and their installation into a repository's
``.github/workflows/``."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, field_validator

from runbook.errors import ConfigurationError

WORKFLOWS_DIR = Path(".github") / "workflows"


class WriteAction(StrEnum):
    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"


class WorkflowSettings(BaseModel):
    """The values written into the workflows' top-level ``env`` (the team edits them
    there later)."""

    service_dir: str = "."
    """The service directory, relative to the repository root."""
    registry: str = ""
    """host[:port] CI pushes the image of the commit to; empty: CI pushes nothing and the
    Prefect run builds from its own checkout."""
    registry_username: str = ""

    @field_validator("service_dir", "registry", "registry_username")
    @classmethod
    def _one_plain_word(cls, value: str) -> str:
        if any(c.isspace() or c in "\"'$`" for c in value):
            raise ValueError(f"{value!r}: no spaces, quotes or $ allowed")
        return value

    @field_validator("registry")
    @classmethod
    def _host_only(cls, value: str) -> str:
        # Image references name the registry by host[:port], never by URL.
        return re.sub(r"^[a-z]+://", "", value).rstrip("/")


_SETTING_LINE = re.compile(r'^(  (SERVICE_DIR|REGISTRY|REGISTRY_USERNAME): )"[^"]*"', re.M)
_SETTING_FIELDS = {"SERVICE_DIR": "service_dir", "REGISTRY": "registry",
                   "REGISTRY_USERNAME": "registry_username"}


def render_workflow(text: str, settings: WorkflowSettings) -> str:
    """A template with the settings' values in its top-level ``env`` lines (two-space
    indented ``SERVICE_DIR: "..."`` and the like); the rest stays as shipped."""
    return _SETTING_LINE.sub(
        lambda m: m.group(1) + json.dumps(getattr(settings, _SETTING_FIELDS[m.group(2)])),
        text)


class InstalledWorkflow(BaseModel):
    path: Path
    action: WriteAction


def workflow_templates() -> dict[str, str]:
    """File name -> text of every shipped workflow, in name order."""
    folder = resources.files("runbook") / "templates" / "github"
    return {entry.name: entry.read_text(encoding="utf-8")
            for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yml")}


def install_workflows(repo_root: Path, settings: WorkflowSettings | None = None,
                      force: bool = False) -> list[InstalledWorkflow]:
    """Write the workflows into ``repo_root/.github/workflows/``.

    A workflow that exists there with other content is the team's own edit: without
    ``force`` nothing at all is written and :class:`ConfigurationError` names those files,
    so a re-run never half-updates a repository.

    Args:
        repo_root: The repository's root directory (must exist).
        settings: Values for the workflows' ``env`` settings; default: the shipped ones.
        force: Replace workflows whose content differs.

    Returns:
        What happened to each file, in name order.
    """
    if not repo_root.is_dir():
        raise ConfigurationError(f"--dir {repo_root}: not a directory")
    target = repo_root / WORKFLOWS_DIR
    rendered = {name: render_workflow(text, settings or WorkflowSettings())
                for name, text in workflow_templates().items()}
    planned = [(target / name, text, _action(target / name, text))
               for name, text in rendered.items()]
    conflicts = [path for path, _, action in planned if action is WriteAction.REPLACED]
    if conflicts and not force:
        raise ConfigurationError(
            "changed locally, not overwritten: "
            + ", ".join(str(path.relative_to(repo_root)) for path in conflicts),
            hint="use --force to replace them")
    target.mkdir(parents=True, exist_ok=True)
    for path, text, action in planned:
        if action is not WriteAction.UNCHANGED:
            path.write_text(text, encoding="utf-8")
    return [InstalledWorkflow(path=path, action=action) for path, _, action in planned]


def _action(path: Path, text: str) -> WriteAction:
    if not path.exists():
        return WriteAction.CREATED
    if path.read_text(encoding="utf-8") == text:
        return WriteAction.UNCHANGED
    return WriteAction.REPLACED
