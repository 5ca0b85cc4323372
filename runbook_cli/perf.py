"""``runbook perf``: the performance check of the live revision, from a shell or cron."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from runbook.config import CONFIG_ENV
from runbook.errors import RunbookError
from runbook.infra import configured_settings, resolve
from runbook.models import Environment, TargetKind
from runbook.perf.check import PerfCheckReport
from runbook.preflight import check_environment
from runbook.service import load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook_cli.common import out
from runbook_cli.exit_codes import ExitCode


def perf(
    service_dir: Annotated[Path, typer.Argument(help="Directory with Dockerfile and service.yaml")],
    env: Annotated[Environment, typer.Option("--env", help="Environment whose live revision "
                                             "is load-tested")],
    target: Annotated[TargetKind | None, typer.Option(
        help="Deploy target; default runbook.yaml's for the environment, else docker")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the check's report (JSON) here")
                      ] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help=f"runbook.yaml to use (default ${CONFIG_ENV}, then the checkout's)")
                      ] = None,
) -> None:
    """Load-test the LIVE revision in the preview slot with the perf stage's gates (the
    baseline is compared, never replaced); nothing is promoted. Exit 0 only when every
    perf gate passed."""
    load_service(service_dir)
    config_path = str(config.resolve()) if config is not None else None
    if config_path is not None:
        # Whatever else reads runbook.yaml in this process finds the same file.
        os.environ[CONFIG_ENV] = config_path
    from flows.perf_check import chosen_target, perf_check

    chosen = chosen_target(env.value, target, config_path)
    settings = configured_settings(config_path)
    # The parts the check uses, with their logins, and of the local stack only those.
    check_environment(resolve(settings, env.value, chosen), RunbookSettings.of(settings),
                      builds=False,
                      local_prefect="PREFECT_API_URL" not in os.environ)
    os.environ.setdefault("PREFECT_API_URL", settings.prefect_api_url)
    report_path = report or Path(tempfile.mkdtemp(prefix="runbook-perf-")) / "report.json"
    perf_check(service_dir=str(service_dir), environment=env, target=chosen,
               report_path=str(report_path), config=config_path, return_state=True)
    if not report_path.exists():
        raise RunbookError("the perf check ended without a report",
                           hint=f"the run's logs are in the Prefect UI ({settings.prefect_ui_url})")
    result = PerfCheckReport.model_validate_json(report_path.read_text())
    _print(result, settings)
    raise typer.Exit(ExitCode.OK if result.passed else ExitCode.FAILED)


def _print(report: PerfCheckReport, settings: StackSettings) -> None:
    colour = "green" if report.passed else "red"
    verdict = "passed" if report.passed else "failed"
    out.print(f"[bold {colour}]perf check {verdict}[/] {report.service} → {report.environment}"
              f"  live revision {report.revision} (nothing promoted)")
    for gate in report.gates:
        mark = "ok  " if gate.passed else "FAIL"
        out.print(f"  {mark} {gate.name}: {gate.value} (threshold {gate.threshold})")
    if report.reason:
        out.print(f"reason: {report.reason}")
    out.print(f"baseline: {report.baseline_revision or 'none yet'} (not replaced)")
    out.print(f"Prefect UI: {report.flow_run_url or settings.prefect_ui_url}")
