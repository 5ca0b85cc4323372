"""Rolling: no preview slot, so no perf stage (load never goes to live traffic); the rollout
itself is the switch, verification decides, the target's undo is the rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.strategies import Ending, bluegreen
from runbook.models import ImageRef, Slot
from runbook.names import Stage
from tasks.deploy import retire_slot, undo_rollout

if TYPE_CHECKING:
    from flows.pipeline import _Run


def release(run: _Run, image: ImageRef, live: Slot | None) -> Ending:
    run.builder.skip(Stage.PREVIEW, "rolling strategy: the release replaces the live one")
    run.builder.skip(Stage.PERF, "rolling strategy has no preview slot and load is never sent "
                             "to live traffic; blue-green runs the perf gates")
    candidate = run.roll_out(image, live)
    return run.verify(candidate, live)


def keep(run: _Run, candidate: Slot, previous: Slot | None) -> None:
    """Retire the replaced revision; a rollout in place (one Deployment) reused its slot."""
    if previous is not None and previous.color != candidate.color:
        with run.builder.stage(Stage.RETIRE):
            retire_slot(run.target, previous, run.settings)


def switch_back(run: _Run, candidate: Slot | None, previous: Slot | None) -> str:
    if previous is None:
        return bluegreen.switch_back(run, candidate, previous)
    restored = undo_rollout(run.target, run.spec.name, run.env, run.policy.deploy,
                            run.settings)
    run.builder.report.revision = restored.revision
    return f"rollout undone: traffic back on {restored.revision}"
