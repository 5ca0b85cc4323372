"""``runbook incident assess|communicate|mitigate|review``: the response steps between
acknowledge and resolve, each recorded with who, when and what (registered on the
``incident`` command group of :mod:`runbook_cli`)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook_cli import _use_stack_prefect, incident_app, out

By = Annotated[str | None, typer.Option(help="Who (default: your login)")]


def _who(by: str | None) -> str:
    return by or getpass.getuser()


@incident_app.command("assess")
def incident_assess(
    incident_id: Annotated[str, typer.Argument(help="Incident id (INC-...)")],
    impact: Annotated[str, typer.Option(help="Which users, since when, how bad")],
    by: By = None,
) -> None:
    """Step 2: record the impact."""
    from tasks.incidents import assess_incident

    incident = assess_incident.fn(incident_id, _who(by), impact, RunbookSettings.load())
    out.print(f"{incident.id} assessed: {incident.impact}")


@incident_app.command("communicate")
def incident_communicate(
    incident_id: Annotated[str, typer.Argument(help="Incident id (INC-...)")],
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
    out.print(f"{incident.id}: update sent to {', '.join(record.to)}"
              + (f"; {waiting} alert(s) wait in the outbox" if waiting else ""))


@incident_app.command("mitigate")
def incident_mitigate(
    incident_id: Annotated[str, typer.Argument(help="Incident id (INC-...)")],
    action: Annotated[str, typer.Option(help="What was done (rolled back, isolated, ...)")],
    by: By = None,
) -> None:
    """Step 4: record the mitigation."""
    from tasks.incidents import mitigate_incident

    incident = mitigate_incident.fn(incident_id, _who(by), action, RunbookSettings.load())
    out.print(f"{incident.id} mitigation recorded")


@incident_app.command("review")
def incident_review(
    incident_id: Annotated[str, typer.Argument(help="Incident id (INC-...)")],
    cause: Annotated[str, typer.Option(help="What caused it")],
    action: Annotated[list[str] | None, typer.Option(
        "--action", help="A follow-up action with its owner (repeatable)")] = None,
    by: By = None,
) -> None:
    """Step 6: the post-incident review (timeline from the run, alert and incident records;
    cause; actions), stored with the incident and published as a Prefect artifact."""
    _use_stack_prefect(StackSettings())
    from flows.incidents import review_incident_flow

    incident = review_incident_flow(incident_id=incident_id, cause=cause,
                                    actions=action or [], by=_who(by))
    assert incident.review is not None
    out.print(f"{incident.id} reviewed: {len(incident.review.timeline)} timeline entries; "
              f"artifact incident-review-{incident.id.lower()}")
