"""The ``runbook`` command line: the top layer, above the flows it starts.

Bad input (missing directory, invalid ``service.yaml``, unknown option value) costs one
line on stderr and exit code 2, before anything starts.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from runbook.config import CONFIG_ENV
from runbook.errors import ConfigurationError, RunbookError, TransientError
from runbook.incident_store import IncidentStore
from runbook.models import Environment, Outcome, RunReport, Strategy, TargetKind
from runbook.service import DNS_LABEL, Service, load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook_cli.init import init_app
from runbook_cli.perf import perf as perf_command

if TYPE_CHECKING:
    from runbook.alerts.notifier import Notifier
    from runbook.infra import EnvironmentInfra

EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="runbook", help="A CI/CD runbook made executable as Prefect flows.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
stack_app = typer.Typer(help="The local stack of real services.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
incident_app = typer.Typer(help="Incidents: list, acknowledge, resolve.", no_args_is_help=True)
app.add_typer(incident_app, name="incident")
app.add_typer(init_app, name="init")
app.command("perf")(perf_command)
# Logs and CI are no terminal: rich would cut tables at 80 columns there.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


def _use_stack_prefect(settings: StackSettings) -> None:
    # Runs go to the stack's Prefect server (visible in its UI) unless the user chose one.
    os.environ.setdefault("PREFECT_API_URL", settings.prefect_api_url)


ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="runbook.yaml with each environment's registry, Prometheus, cluster "
    "and endpoint; default: $RUNBOOK_CONFIG, else the repository's runbook.yaml, else the "
    "local stack")]
TargetOption = Annotated[TargetKind | None, typer.Option(
    help="Deploy target; default: the environment's `target` in runbook.yaml, else docker")]


def _settings(config: Path | None) -> StackSettings:
    """The settings with the configuration in force. ``--config`` is also exported as
    RUNBOOK_CONFIG, so every flow this process starts reads the same file."""
    from runbook.infra import configured_settings

    if config is not None:
        config = config.resolve()
        os.environ[CONFIG_ENV] = str(config)
    return configured_settings(config)


def _parse_build_args(values: list[str]) -> dict[str, str]:
    args = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--build-arg {value!r}: expected KEY=VALUE")
        args[key] = val
    return args


@app.command()
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
    """Build, test, scan, load-test, deploy, verify: exit 0 only when the release is live."""
    from runbook.infra import resolve
    from runbook.preflight import check_environment, check_prebuilt

    load_service(service_dir)
    build_args = _parse_build_args(build_arg or [])
    settings = _settings(config)
    infra = resolve(settings, env.value, target)
    # Every part this run uses answers with its login before anything is built.
    check_environment(infra, RunbookSettings.of(settings), builds=image is None,
                      local_prefect="PREFECT_API_URL" not in os.environ)
    if image is not None:
        check_prebuilt(infra, image)
    _use_stack_prefect(settings)
    from flows.pipeline import pipeline as pipeline_flow

    report_path = report or Path(tempfile.mkdtemp(prefix="runbook-")) / "report.json"
    pipeline_flow(
        service_dir=str(service_dir), environment=env, strategy=strategy, target=infra.target,
        build_args=build_args, report_path=str(report_path), image=image,
        config=os.environ.get(CONFIG_ENV) if config else None, return_state=True,
    )
    if not report_path.exists():
        err.print("error: the pipeline ended without a report; see the Prefect UI")
        raise typer.Exit(1)
    result = RunReport.model_validate_json(report_path.read_text())
    _print_report(result, settings)
    raise typer.Exit(_EXIT_CODES.get(result.outcome, 1))


@app.command()
def render(
    service_dir: Annotated[Path, typer.Argument(help="Directory with Dockerfile and service.yaml")],
    env: Annotated[Environment, typer.Option("--env", help="Target environment")],
    target: Annotated[TargetKind, typer.Option(help="Deploy target")] = TargetKind.KUBERNETES,
    image: Annotated[str | None, typer.Option(
        help="Image by digest (REPO@sha256:...); default: the registry's digest of the "
             "service's current content revision")] = None,
    config: ConfigOption = None,
) -> None:
    """Print the manifests of a release as YAML (review, GitOps)."""
    import yaml

    from runbook.build import content_revision
    from runbook.infra import resolve
    from runbook.kube.manifests import render_all

    service = load_service(service_dir)
    if target is not TargetKind.KUBERNETES:
        raise ConfigurationError(f"--target {target.value}: only kubernetes has manifests")
    settings = _settings(config)
    infra = resolve(settings, env.value, target)
    revision = content_revision(service, service.spec.build.args,
                                _base_ids(service, settings))
    image = image or _image_by_digest(infra, service.spec.name, revision)
    if "@sha256:" not in image:
        raise ConfigurationError(f"--image {image!r}: expected REPOSITORY@sha256:DIGEST")
    policy = service.spec.policy_for(env.value)
    namespace = RunbookSettings.of(settings).kubernetes_for(env.value, target).namespace(env.value)
    manifests = render_all(service.spec, env.value, namespace,
                           revision, image, policy.deploy.health_timeout_s)
    print(yaml.safe_dump_all(manifests, sort_keys=False), end="")


def _base_ids(service: Service, settings: StackSettings) -> dict[str, str]:
    """The resolved bases, as the pipeline's build put them in the revision; none when the
    engine cannot be asked (rendering needs no engine when ``--image`` is given)."""
    from runbook.adapters.base_images import resolve_bases
    from runbook.build import dockerfile_bases

    names = dockerfile_bases(service.dockerfile.read_text(), service.spec.build.args)
    try:
        return resolve_bases(settings.docker_host, names).resolved
    except TransientError:
        return {}


def _image_by_digest(infra: EnvironmentInfra, name: str, revision: str) -> str:
    from runbook.adapters.registry import Registry
    from runbook.build import repository

    digest = Registry.of(infra.registry).manifest_digest(name, revision)
    if digest is None:
        raise ConfigurationError(
            f"{name}:{revision} is not in the {infra.registry.label}: build it first "
            "(runbook pipeline) or pass --image REPOSITORY@sha256:DIGEST"
        )
    return f"{repository(infra.registry.host, name)}@{digest}"


@app.command()
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
    exit 0 only when the application is healthy afterwards."""
    from runbook.infra import resolve
    from runbook.preflight import check_cluster, check_local_stack

    _check_service_name(name)
    settings = _settings(config)
    infra = resolve(settings, env.value, target)
    check_local_stack(settings, infra.local_components(builds=False)
                      + ([] if "PREFECT_API_URL" in os.environ else ["prefect"]))
    if infra.target is TargetKind.KUBERNETES:
        check_cluster(RunbookSettings.of(settings).kubernetes_for(env.value, infra.target))
    _use_stack_prefect(settings)
    from flows.rollback import rollback as rollback_flow

    result = rollback_flow(service=name, environment=env, to_revision=to, target=infra.target,
                           service_dir=str(service_dir) if service_dir else None,
                           verify_window_s=verify_window)
    health = result.check.summary if result.check else "health not checked"
    out.print(f"{name}/{env.value}: traffic on {result.revision} ({result.color}), "
              f"{result.kind.value} from {result.previous}; {health}")
    raise typer.Exit(0 if result.healthy else 1)


@app.command()
def status(
    name: Annotated[str, typer.Argument(help="Service name")],
    env: Annotated[Environment, typer.Option("--env")],
    target: TargetOption = None,
    config: ConfigOption = None,
) -> None:
    """What serves the environment now and what is kept for rollback (JSON)."""
    _check_service_name(name)
    from runbook.infra import public_endpoint, resolve
    from runbook.targets import make_target

    settings = _settings(config)
    infra = resolve(settings, env.value, target)
    deploy_target = make_target(infra.target, RunbookSettings.of(settings), env.value)
    live = deploy_target.live(name, env.value)
    standby = deploy_target.standby(name, env.value)
    if live is None and standby is None:
        raise RunbookError(f"{name}/{env.value}: nothing deployed")
    print(json.dumps({
        "service": name,
        "environment": env.value,
        "endpoint": public_endpoint(infra, name) or deploy_target.endpoint(name, env.value),
        "live": live.model_dump() if live else None,
        "standby": standby.model_dump() if standby else None,
    }, indent=2))


@stack_app.command("up")
def stack_up() -> None:
    """Start every component that is not running; idempotent."""
    from runbook import stack

    statuses = stack.up(StackSettings(), on_progress=lambda line: err.print(line))
    _print_stack(statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down() -> None:
    """Stop what the stack started; data stays in the state directory."""
    from runbook import stack

    _print_stack(stack.down(StackSettings()))


@stack_app.command("status")
def stack_status() -> None:
    """Every component with its URL and health."""
    from runbook import stack

    statuses = stack.status(StackSettings())
    _print_stack(statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


def _print_stack(statuses: list) -> None:  # type: ignore[type-arg]
    table = Table("component", "healthy", "action", "url", "detail")
    for s in statuses:
        table.add_row(s.name, "yes" if s.healthy else "no", s.action, s.url, s.detail)
    out.print(table)


def _incident_store() -> IncidentStore:
    return _notifier().incidents


def _notifier() -> Notifier:
    from tasks.notify import open_notifier

    return open_notifier(RunbookSettings.load())


def _stamp(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "-"


@incident_app.command("list")
def incident_list(
    all_: Annotated[bool, typer.Option("--all", help="Resolved incidents too")] = False,
) -> None:
    """Incidents with priority, response deadline and whether it was missed."""
    from runbook.incidents import now_utc

    now = now_utc()
    incidents = [i for i in _incident_store().all() if all_ or i.is_open]
    table = Table("id", "priority", "status", "service", "environment", "opened",
                  "respond by", "overdue", "title")
    for i in incidents:
        table.add_row(i.id, i.priority.value, i.status.value, i.service, i.environment,
                      _stamp(i.opened_at), _stamp(i.respond_by),
                      "OVERDUE" if i.overdue(now) else "no", i.title)
    out.print(table)


@incident_app.command("ack")
def incident_ack(
    incident_id: Annotated[str, typer.Argument(help="Incident id (INC-...)")],
    by: Annotated[str | None, typer.Option(help="Who takes it (default: your login)")] = None,
) -> None:
    """Acknowledge an incident: records who and when (its response clock stops), and tells
    the alert's channels (PagerDuty stops escalating, a note in Slack)."""
    import getpass

    notifier = _notifier()
    published = notifier.acknowledge_incident(incident_id, by or getpass.getuser())
    incident = published.incident or notifier.incidents.get(incident_id)
    # Delivered now if the channels answer; otherwise the outbox keeps it for the next run.
    waiting = notifier.flush().waiting
    out.print(f"{incident.id} acknowledged by {incident.acknowledged_by} at "
              f"{_stamp(incident.acknowledged_at)}"
              + (f"; {waiting} alert(s) wait in the outbox" if waiting else ""))


@incident_app.command("resolve")
def incident_resolve(
    incident_id: Annotated[str, typer.Argument(help="Incident id (INC-...)")],
    note: Annotated[str, typer.Option(help="What resolved it")],
    by: Annotated[str | None, typer.Option(help="Who resolved it (default: your login)")] = None,
) -> None:
    """Resolve an incident and its alert (PagerDuty too); publish the post-incident review."""
    import getpass

    incident = _incident_store().get(incident_id)
    if not incident.is_open:
        raise ConfigurationError(f"{incident_id} is resolved already")
    _use_stack_prefect(StackSettings())
    from flows.incidents import resolve_incident_flow

    resolution = resolve_incident_flow(incident_id=incident_id,
                                       note=f"{note} (by {by or getpass.getuser()})")
    waiting = resolution.notify.waiting
    out.print(f"{incident_id} resolved at {_stamp(resolution.incident.resolved_at)}; review "
              f"artifact incident-review-{incident_id.lower()}"
              + (f"; {waiting} alert(s) wait in the outbox" if waiting else ""))


_EXIT_CODES = {Outcome.RELEASED: 0, Outcome.ROLLBACK_FAILED: 3}
"""0: live and verified; 2: bad input (before anything starts); 3: the switch back failed,
what serves is not verified, act now; 1: any other outcome."""


def _print_report(report: RunReport, settings: StackSettings) -> None:
    colour = "green" if report.outcome is Outcome.RELEASED else "red"
    out.print(f"[bold {colour}]{report.outcome.value}[/] {report.service} → {report.environment}"
              f"  revision {report.revision} (previous {report.previous})")
    if report.reason:
        out.print(f"reason: {report.reason}")
    out.print(f"endpoint: {report.endpoint}")
    out.print(f"Prefect UI: {report.flow_run_url or settings.prefect_ui_url}")


def _check_service_name(name: str) -> None:
    if not DNS_LABEL.match(name):
        raise ConfigurationError(f"{name!r} is not a service name (DNS-safe: a-z, 0-9, '-')")


def main() -> None:
    try:
        # Without standalone mode, click returns a command's typer.Exit code instead of
        # exiting; errors come here as exceptions so each gets its one line.
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:
        # Usage errors (unknown option value, missing argument): one line, exit 2.
        format_message = getattr(exc, "format_message", None)
        message = format_message() if format_message else str(exc)
        _fail(message.replace("Value error, ", ""), EXIT_BAD_INPUT)
    except ConfigurationError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except RunbookError as exc:
        _fail(str(exc), 1)
    sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int) -> None:
    # One line, never wrapped: CI logs and scripts grep for it.
    print("error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(code)


# The incident response steps live in their own module; importing it registers them.
from runbook_cli import incident as _incident_steps  # noqa: E402,F401
