"""``runbook incident list|ack|assess|communicate|mitigate|resolve|review``: the incident
response steps, each recorded with who, when and what."""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from runbook.errors import ConfigurationError
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook_cli.common import out, use_stack_prefect

if TYPE_CHECKING:
    from runbook.alerts.notifier import Notifier

incident_app = typer.Typer(help="Incidents: list, acknowledge, resolve.", no_args_is_help=True)

IncidentId = Annotated[str, typer.Argument(help="Incident id (INC-...)")]
By = Annotated[str | None, typer.Option(help="Who (default: your login)")]


def _who(by: str | None) -> str:
    return by or getpass.getuser()


def _notifier() -> Notifier:
    from tasks.notify import open_notifier

    return open_notifier(RunbookSettings.load())


def _stamp(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "-"


def _outbox_note(waiting: int) -> str:
    return f"; {waiting} alert(s) wait in the outbox" if waiting else ""


@incident_app.command("list")
def incident_list(
    all_: Annotated[bool, typer.Option("--all", help="Resolved incidents too")] = False,
) -> None:
    """Incidents with priority, response deadline and whether it was missed."""
    from runbook.incidents import now_utc

    now = now_utc()
    incidents = [i for i in _notifier().incidents.all() if all_ or i.is_open]
    table = Table("id", "priority", "status", "service", "environment", "opened",
                  "respond by", "overdue", "title")
    for i in incidents:
        table.add_row(i.id, i.priority.value, i.status.value, i.service, i.environment,
                      _stamp(i.opened_at), _stamp(i.respond_by),
                      "OVERDUE" if i.overdue(now) else "no", i.title)
    out.print(table)


@incident_app.command("ack")
def incident_ack(
    incident_id: IncidentId,
    by: Annotated[str | None, typer.Option(help="Who takes it (default: your login)")] = None,
) -> None:
    """Acknowledge an incident: records who and when (its response clock stops), and tells
    the alert's channels (PagerDuty stops escalating, a note in Slack)."""
    notifier = _notifier()
    published = notifier.acknowledge_incident(incident_id, _who(by))
    incident = published.incident or notifier.incidents.get(incident_id)
    # Delivered now if the channels answer; otherwise the outbox keeps it for the next run.
    waiting = notifier.flush().waiting
    out.print(f"{incident.id} acknowledged by {incident.acknowledged_by} at "
              f"{_stamp(incident.acknowledged_at)}" + _outbox_note(waiting))


@incident_app.command("assess")
def incident_assess(
    incident_id: IncidentId,
    impact: Annotated[str, typer.Option(help="Which users, since when, how bad")],
    by: By = None,
) -> None:
    """Step 2: record the impact."""
    from tasks.incidents import assess_incident

    incident = assess_incident.fn(incident_id, _who(by), impact, RunbookSettings.load())
    out.print(f"{incident.id} assessed: {incident.impact}")


@incident_app.command("communicate")
def incident_communicate(
    incident_id: IncidentId,
    message: Annotated[str, typer.Option(help="The status update to send")],
    by: By = None,
) -> None:
    """Step 3: send a status update to the incident's channels; records what and to whom."""
    from runbook.incidents import Step, step_record
    from tasks.notify import open_notifier

    notifier = open_notifier(RunbookSettings.load())
    incident = notifier.communicate(incident_id, _who(by), message)
    waiting = notifier.flush().waiting
    record = step_record(incident, Step.COMMUNICATE)
    out.print(f"{incident.id}: update sent to {', '.join(record.to)}" + _outbox_note(waiting))


@incident_app.command("mitigate")
def incident_mitigate(
    incident_id: IncidentId,
    action: Annotated[str, typer.Option(help="What was done (rolled back, isolated, ...)")],
    by: By = None,
) -> None:
    """Step 4: record the mitigation."""
    from tasks.incidents import mitigate_incident

    incident = mitigate_incident.fn(incident_id, _who(by), action, RunbookSettings.load())
    out.print(f"{incident.id} mitigation recorded")


@incident_app.command("resolve")
def incident_resolve(
    incident_id: IncidentId,
    note: Annotated[str, typer.Option(help="What resolved it")],
    by: Annotated[str | None, typer.Option(help="Who resolved it (default: your login)")] = None,
) -> None:
    """Resolve an incident and its alert (PagerDuty too); publish the post-incident review."""
    incident = _notifier().incidents.get(incident_id)
    if not incident.is_open:
        raise ConfigurationError(f"{incident_id} is resolved already")
    use_stack_prefect(StackSettings())
    from flows.incidents import resolve_incident_flow

    resolution = resolve_incident_flow(incident_id=incident_id,
                                       note=f"{note} (by {_who(by)})")
    out.print(f"{incident_id} resolved at {_stamp(resolution.incident.resolved_at)}; review "
              f"artifact incident-review-{incident_id.lower()}"
              + _outbox_note(resolution.notify.waiting))


@incident_app.command("review")
def incident_review(
    incident_id: IncidentId,
    cause: Annotated[str, typer.Option(help="What caused it")],
    action: Annotated[list[str] | None, typer.Option(
        "--action", help="A follow-up action with its owner (repeatable)")] = None,
    by: By = None,
) -> None:
    """Step 6: the post-incident review (timeline from the run, alert and incident records;
    cause; actions), stored with the incident and published as a Prefect artifact."""
    use_stack_prefect(StackSettings())
    from flows.incidents import review_incident_flow

    incident = review_incident_flow(incident_id=incident_id, cause=cause,
                                    actions=action or [], by=_who(by))
    assert incident.review is not None
    out.print(f"{incident.id} reviewed: {len(incident.review.timeline)} timeline entries; "
              f"artifact incident-review-{incident.id.lower()}")
