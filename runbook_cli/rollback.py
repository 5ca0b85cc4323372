"""``runbook rollback``: traffic back to an earlier revision, then its health checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runbook.models import Environment, TargetKind
from runbook.settings_root import RunbookSettings
from runbook_cli.common import (
    ConfigOption,
    TargetOption,
    check_service_name,
    local_prefect,
    out,
    settings_for,
    use_stack_prefect,
)
from runbook_cli.exit_codes import ExitCode


def rollback(
    name: Annotated[str, typer.Argument(help="Service name")],
    env: Annotated[Environment, typer.Option("--env")],
    to: Annotated[str | None, typer.Option(
        "--to", help="Revision to return to: the standby, or any revision the registry "
                     "still has")] = None,
    target: TargetOption = None,
    service_dir: Annotated[Path | None, typer.Option(
        help="The service directory, when the target does not keep its service.yaml")] = None,
    verify_window: Annotated[float | None, typer.Option(
        help="Seconds the standard checks watch the revision rolled back to")] = None,
    config: ConfigOption = None,
) -> None:
    """Send the environment's traffic back to an earlier revision, then check its health:
    exit 0 only when the application is healthy afterwards (1 when it is not)."""
    from runbook.infra import resolve
    from runbook.preflight import check_cluster, check_local_stack

    check_service_name(name)
    settings = settings_for(config)
    infra = resolve(settings, env.value, target)
    check_local_stack(settings, infra.local_components(builds=False)
                      + (["prefect"] if local_prefect() else []))
    if infra.target is TargetKind.KUBERNETES:
        check_cluster(RunbookSettings.of(settings).kubernetes_for(env.value, infra.target))
    use_stack_prefect(settings)
    from flows.rollback import rollback as rollback_flow

    result = rollback_flow(service=name, environment=env, to_revision=to, target=infra.target,
                           service_dir=str(service_dir) if service_dir else None,
                           verify_window_s=verify_window)
    health = result.check.summary if result.check else "health not checked"
    out.print(f"{name}/{env.value}: traffic on {result.revision} ({result.color}), "
              f"{result.kind.value} from {result.previous}; {health}")
    raise typer.Exit(ExitCode.OK if result.healthy else ExitCode.FAILED)
