"""What the command groups share: the consoles, the ``--config`` / ``--target`` options, the
settings in force and the Prefect server runs go to."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from runbook.config import CONFIG_ENV
from runbook.errors import ConfigurationError
from runbook.models import TargetKind
from runbook.service import DNS_LABEL
from runbook.settings import StackSettings

# Logs and CI are no terminal: rich would cut tables at 80 columns there.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="runbook.yaml with each environment's registry, Prometheus, cluster "
    "and endpoint; default: $RUNBOOK_CONFIG, else the repository's runbook.yaml, else the "
    "local stack")]
TargetOption = Annotated[TargetKind | None, typer.Option(
    help="Deploy target; default: the environment's `target` in runbook.yaml, else docker")]


def use_stack_prefect(settings: StackSettings) -> None:
    """Runs go to the stack's Prefect server (visible in its UI) unless the user chose one."""
    os.environ.setdefault("PREFECT_API_URL", settings.prefect_api_url)


def local_prefect() -> bool:
    """Whether runs go to the local stack's Prefect server (no PREFECT_API_URL chosen)."""
    return "PREFECT_API_URL" not in os.environ


def settings_for(config: Path | None) -> StackSettings:
    """The settings with the configuration in force. ``--config`` is also exported as
    RUNBOOK_CONFIG, so every flow this process starts reads the same file."""
    from runbook.infra import configured_settings

    if config is not None:
        config = config.resolve()
        os.environ[CONFIG_ENV] = str(config)
    return configured_settings(config)


def check_service_name(name: str) -> None:
    """A service name argument is DNS-safe, else bad input."""
    if not DNS_LABEL.match(name):
        raise ConfigurationError(f"{name!r} is not a service name (DNS-safe: a-z, 0-9, '-')")
