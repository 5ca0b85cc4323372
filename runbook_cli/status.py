"""``runbook status``: what serves an environment now and what is kept for rollback."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from runbook.errors import RunbookError
from runbook.models import Environment
from runbook.settings_root import RunbookSettings
from runbook_cli.common import ConfigOption, TargetOption, check_service_name, settings_for


def status(
    name: Annotated[str, typer.Argument(help="Service name")],
    env: Annotated[Environment, typer.Option("--env")],
    target: TargetOption = None,
    config: ConfigOption = None,
) -> None:
    """What serves the environment now and what is kept for rollback (JSON)."""
    check_service_name(name)
    from runbook.infra import public_endpoint, resolve
    from runbook.targets import make_target

    settings = settings_for(config)
    infra = resolve(settings, env.value, target)
    deploy_target = make_target(infra.target, RunbookSettings.of(settings), env.value)
    live = deploy_target.live(name, env.value)
    standby = deploy_target.standby(name, env.value)
    if live is None and standby is None:
        raise RunbookError(f"{name}/{env.value}: nothing deployed",
                           hint=f"deliver it with `runbook pipeline SERVICE_DIR --env {env.value}`")
    print(json.dumps({
        "service": name,
        "environment": env.value,
        "endpoint": public_endpoint(infra, name) or deploy_target.endpoint(name, env.value),
        "live": live.model_dump() if live else None,
        "standby": standby.model_dump() if standby else None,
    }, indent=2))
