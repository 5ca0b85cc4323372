"""``runbook pipeline``: one release, from a service directory to a verified release."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from runbook.config import CONFIG_ENV
from runbook.errors import ConfigurationError, RunbookError
from runbook.models import Environment, Outcome, RunReport, Strategy
from runbook.service import load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook_cli.common import (
    ConfigOption,
    TargetOption,
    local_prefect,
    out,
    settings_for,
    use_stack_prefect,
)
from runbook_cli.exit_codes import exit_code_for


def pipeline(
    service_dir: Annotated[Path, typer.Argument(help="Directory with Dockerfile and service.yaml")],
    env: Annotated[Environment, typer.Option("--env", help="Target environment")],
    strategy: Annotated[Strategy, typer.Option(help="Deployment strategy")] = Strategy.BLUE_GREEN,
    target: TargetOption = None,
    report: Annotated[Path | None, typer.Option(help="Write the run report (JSON) here")] = None,
    build_arg: Annotated[
        list[str] | None, typer.Option("--build-arg", help="KEY=VALUE docker build argument")
    ] = None,
    image: Annotated[str | None, typer.Option(
        help="Deploy REPO@sha256:DIGEST built elsewhere (CI): no build; the digest must be "
             "in the environment's registry")] = None,
    config: ConfigOption = None,
) -> None:
    """Build, test, scan, load-test, deploy, verify: exit 0 only when the release is live.

    Exit 4 blocked, 5 rolled back, 3 rollback failed, 1 failed, 2 bad input."""
    from runbook.infra import resolve
    from runbook.preflight import check_environment, check_prebuilt

    load_service(service_dir)
    build_args = parse_build_args(build_arg or [])
    settings = settings_for(config)
    infra = resolve(settings, env.value, target)
    # Every part this run uses answers with its login before anything is built.
    check_environment(infra, RunbookSettings.of(settings), builds=image is None,
                      local_prefect=local_prefect())
    if image is not None:
        check_prebuilt(infra, image)
    use_stack_prefect(settings)
    from flows.pipeline import pipeline as pipeline_flow

    report_path = report or Path(tempfile.mkdtemp(prefix="runbook-")) / "report.json"
    pipeline_flow(
        service_dir=str(service_dir), environment=env, strategy=strategy, target=infra.target,
        build_args=build_args, report_path=str(report_path), image=image,
        config=os.environ.get(CONFIG_ENV) if config else None, return_state=True,
    )
    if not report_path.exists():
        raise RunbookError("the pipeline ended without a report",
                           hint=f"the run's logs are in the Prefect UI ({settings.prefect_ui_url})")
    result = RunReport.model_validate_json(report_path.read_text())
    print_report(result, settings)
    raise typer.Exit(exit_code_for(result.outcome))


def parse_build_args(values: list[str]) -> dict[str, str]:
    """``--build-arg KEY=VALUE`` options as a mapping."""
    args = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--build-arg {value!r}: expected KEY=VALUE")
        args[key] = val
    return args


def print_report(report: RunReport, settings: StackSettings) -> None:
    colour = "green" if report.outcome is Outcome.RELEASED else "red"
    out.print(f"[bold {colour}]{report.outcome.value}[/] {report.service} → {report.environment}"
              f"  revision {report.revision} (previous {report.previous})")
    if report.reason:
        out.print(f"reason: {report.reason}")
    out.print(f"endpoint: {report.endpoint}")
    out.print(f"Prefect UI: {report.flow_run_url or settings.prefect_ui_url}")
