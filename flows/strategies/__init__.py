"""How traffic moves to a release, one module per strategy (as Argo Rollouts keeps
``bluegreen.go`` and ``canary.go``): ``bluegreen`` previews in the idle color and switches,
``rolling`` replaces the live revision in place. Each module has the same three functions:

- ``release(run, image, live) -> Ending``: the strategy's steps, in procedure order;
- ``keep(run, candidate, previous)``: what a verified release leaves behind;
- ``switch_back(run, candidate, previous) -> str``: traffic back on ``previous``; raises
  when it cannot (the run then ends ``rollback_failed``).

``run`` is the pipeline's ``_Run``: the steps shared by every strategy (preview, perf,
approval, promote, verify) live there.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from runbook.models import Outcome, Strategy


@dataclass(frozen=True)
class Ending:
    """How a run ends: decided by a step, applied once by ``_Run.execute``."""

    outcome: Outcome
    reason: str = ""


def strategy_module(strategy: Strategy) -> ModuleType:
    from flows.strategies import bluegreen, rolling

    return {Strategy.BLUE_GREEN: bluegreen, Strategy.ROLLING: rolling}[strategy]
