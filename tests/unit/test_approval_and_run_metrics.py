"""Pure decisions: when a person is asked, and what one run adds to the pipeline metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runbook.analysis import Phase
from runbook.approval import (
    AfterVerification,
    after_verification,
    answered,
    describe,
    promotion_needs_approval,
    unanswered,
)
from runbook.models import Outcome, RunReport, StageRecord, StageStatus
from runbook.policy import DeploySettings
from runbook.run_metrics import run_sample

ON = DeploySettings(require_approval=True)
OFF = DeploySettings()


def test_approvals_are_off_by_default() -> None:
    assert not promotion_needs_approval(OFF)
    assert promotion_needs_approval(ON)


@pytest.mark.parametrize(("phase", "deploy", "expected"), [
    (Phase.SUCCESSFUL, ON, AfterVerification.KEEP),
    (Phase.FAILED, ON, AfterVerification.ROLL_BACK),
    (Phase.ERROR, ON, AfterVerification.ROLL_BACK),
    (Phase.INCONCLUSIVE, ON, AfterVerification.ASK),
    (Phase.INCONCLUSIVE, OFF, AfterVerification.ROLL_BACK),
])
def test_only_an_inconclusive_verdict_asks_and_only_with_approvals_on(
    phase: Phase, deploy: DeploySettings, expected: AfterVerification,
) -> None:
    assert after_verification(phase, deploy) is expected


def test_no_answer_is_a_no_and_says_so() -> None:
    decision = unanswered("promote", "Promote?", 3600)
    assert not decision.approved
    assert describe(decision) == "promote rejected by timeout: no decision within 3600 s"


def test_an_unnamed_answer_says_it_was_unnamed() -> None:
    decision = answered("verify", "Keep?", True, "  ", "")
    assert decision.approved
    assert decision.decided_by == "unnamed (Prefect UI)"
    assert decision.reason == "no reason given"


def _stage(name: str, status: StageStatus, duration_s: float) -> StageRecord:
    return StageRecord(name=name, status=status, started_at=datetime.now(UTC),
                       duration_s=duration_s)


def _report(outcome: Outcome, *stages: StageRecord) -> RunReport:
    return RunReport(outcome=outcome, service="svc", environment="staging",
                     strategy="blue-green", target="docker", stages=list(stages))


def test_deploy_spans_preview_to_rollback_and_fails_on_rollback() -> None:
    sample = run_sample(_report(
        Outcome.ROLLED_BACK,
        _stage("build", StageStatus.PASSED, 30), _stage("test", StageStatus.SKIPPED, 0),
        _stage("preview", StageStatus.PASSED, 5), _stage("promote", StageStatus.PASSED, 1),
        _stage("verify", StageStatus.FAILED, 20), _stage("rollback", StageStatus.PASSED, 2),
    ))
    by_stage = {s.stage: s for s in sample.stages}
    assert "test" not in by_stage  # skipped stages say nothing about success or time
    assert (by_stage["deploy"].outcome, by_stage["deploy"].duration_s) == ("failed", 28)
    assert by_stage["build"].outcome == "passed"
    assert sample.outcome == "rolled_back"


def test_a_gate_before_traffic_is_blocked_not_a_failed_deploy() -> None:
    sample = run_sample(_report(Outcome.BLOCKED, _stage("preview", StageStatus.PASSED, 5),
                                _stage("perf", StageStatus.FAILED, 10)))
    assert {s.stage: s.outcome for s in sample.stages}["deploy"] == "blocked"


def test_a_run_stopped_before_preview_has_no_deploy() -> None:
    sample = run_sample(_report(Outcome.BLOCKED, _stage("build", StageStatus.FAILED, 3)))
    assert [s.stage for s in sample.stages] == ["build"]



def test_a_run_pushes_only_its_own_sample_with_every_outcome_seeded() -> None:
    """One group per run: values are this run's alone (1 / 0, its seconds), so summing
    runs in PromQL counts each run once, and a gap never stands for zero."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from runbook.adapters.pushgateway import _RunCollector

    sample = run_sample(_report(
        Outcome.ROLLED_BACK, _stage("build", StageStatus.PASSED, 30),
        _stage("preview", StageStatus.PASSED, 5), _stage("verify", StageStatus.FAILED, 20),
    ), run="run-1")
    registry = CollectorRegistry()
    registry.register(_RunCollector(sample))
    values = {
        (s.name, s.labels.get("stage", ""), s.labels.get("outcome", "")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert values[("runbook_pipeline_run_outcome", "", "rolled_back")] == 1
    assert values[("runbook_pipeline_run_outcome", "", "released")] == 0
    assert values[("runbook_pipeline_run_stage", "build", "passed")] == 1
    assert values[("runbook_pipeline_run_stage", "build", "failed")] == 0
    assert values[("runbook_pipeline_run_stage", "deploy", "failed")] == 1
    assert values[("runbook_pipeline_run_stage", "deploy", "blocked")] == 0
    assert values[("runbook_pipeline_run_stage_duration_seconds", "deploy", "failed")] == 25
    assert ("runbook_pipeline_run_stage_duration_seconds", "build", "failed") not in values
    assert values[("runbook_pipeline_run_finished_timestamp_seconds", "", "")] == (
        sample.finished_at_s)
