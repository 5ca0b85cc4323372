"""Blue-green: the candidate starts in the idle color behind the preview port, is load-tested
there (never on live traffic), and takes all traffic in one atomic switch; the previous
color stays running as the instant rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.strategies import Ending
from runbook.models import ImageRef, Slot
from tasks.deploy import discard_candidate, isolate_service, switch_traffic

if TYPE_CHECKING:
    from flows.pipeline import _Run


def release(run: _Run, image: ImageRef, live: Slot | None) -> Ending:
    """Preview, perf, approval, promote, verify: one step a line, each says whether to go on."""
    candidate = run.preview(image)
    if isinstance(candidate, Ending):
        return candidate
    if (stop := run.perf(candidate)) is not None:
        return stop
    if (stop := run.approve_promotion(candidate, live)) is not None:
        return stop
    run.promote(candidate, live)
    return run.verify(candidate, live)


def keep(run: _Run, candidate: Slot, previous: Slot | None) -> None:
    """Nothing to retire: the previous color is the rollback until the next release."""


def switch_back(run: _Run, candidate: Slot | None, previous: Slot | None) -> str:
    if previous is not None:
        switch_traffic(run.target, previous, run.policy.deploy, run.settings)
        detail = f"traffic back on {previous.revision}"
    elif candidate is not None:
        # A first release found bad: there is nothing to go back to, so it is taken off
        # traffic (the endpoint answers 503, as it did before this release), then removed.
        isolate_service(run.target, run.spec.name, run.env, run.settings)
        detail = ("no previous revision: the release is taken off traffic, nothing is live "
                  "(the endpoint answers 503 until a good release)")
    else:
        detail = "no previous revision: the environment has no live revision"
    run.builder.report.revision = previous.revision if previous else None
    if candidate is None:
        return detail
    logs = discard_candidate(run.target, candidate, run.settings)
    if logs:
        run.logger.info("last logs of %s:\n%s", candidate.revision, logs)
    return detail
