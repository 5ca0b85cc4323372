"""A paused production promotion, resumed through the Prefect API with the typed form."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from prefect.runtime import flow_run

from flows.pipeline import _Run
from runbook.models import Environment, Outcome, RunReport, Slot, Strategy, TargetKind
from runbook.service import load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from tests.conftest import FAST_POLICY

pytestmark = pytest.mark.stack
started: queue.Queue[str] = queue.Queue()


@flow
def promotion_gate(service_dir: str) -> tuple[bool, RunReport]:
    """The pipeline's own promotion step, up to the traffic switch, for a candidate."""
    started.put(str(flow_run.id))
    run = _Run(load_service(service_dir), Environment.PRODUCTION, Strategy.BLUE_GREEN,
               TargetKind.DOCKER, RunbookSettings.of(StackSettings()), {})
    live = run.read_live()
    candidate = Slot(service=run.spec.name, environment="production", color="green",
                     revision=f"r{uuid.uuid4().hex[:8]}", image="unused", address="127.0.0.1:9")
    ending = run.approve_promotion(candidate, live)
    if ending is not None:
        # As `_Run.execute` does with the step's ending: the one place a run ends.
        run.builder.finish(ending.outcome, ending.reason)
    return ending is None, run.builder.report


def _answer_when_paused(answer: dict[str, object]) -> None:
    flow_run_id = started.get(timeout=60)
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while not client.read_flow_run(flow_run_id).state.is_paused():
            assert time.monotonic() < deadline, "the run never paused"
            time.sleep(0.5)
    resume_flow_run(flow_run_id, run_input=answer)


def _run_with_answer(service_dir: Path, answer: dict[str, object]) -> tuple[bool, RunReport]:
    responder = threading.Thread(target=_answer_when_paused, args=(answer,))
    responder.start()
    result = promotion_gate(str(service_dir))
    responder.join(timeout=60)
    return result


@pytest.fixture
def gated_service(stack_settings: StackSettings, sample_service: Callable[..., Path]) -> Path:
    policy = {**FAST_POLICY, "deploy": {**FAST_POLICY["deploy"], "require_approval": True,
                                        "approval_poll_s": 1, "approval_timeout_s": 60}}
    return sample_service(policy=policy)


def test_approved_promotion_goes_ahead_and_records_who(gated_service: Path) -> None:
    approved, report = _run_with_answer(
        gated_service, {"approve": True, "reason": "change ticket 42", "decided_by": "alice"})
    assert approved
    assert report.outcome is Outcome.FAILED  # not finished: the pipeline goes on to promote
    [approval] = report.approvals
    assert (approval.approved, approval.decided_by, approval.reason) == (
        True, "alice", "change ticket 42")


def test_rejected_promotion_ends_blocked_with_nothing_moved(gated_service: Path) -> None:
    approved, report = _run_with_answer(
        gated_service, {"approve": False, "reason": "freeze", "decided_by": "bob"})
    assert not approved
    assert report.outcome is Outcome.BLOCKED
    assert "rejected by bob: freeze" in report.reason
    assert "promote" not in [s.name for s in report.stages]
    assert report.revision == report.previous  # traffic still where it was
