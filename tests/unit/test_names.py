"""Typed names shared by the layers: every gate raises a known alert, every stage a strategy
runs is a deploy stage (or deliberately not), deploy tasks are tagged and every strategy's
deploy is counted by daily health."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from flows.pipeline import _Run
from flows.strategies import bluegreen, rolling
from runbook import gates
from runbook.alerts.models import AlertKind
from runbook.alerts.release import alert_kind
from runbook.analysis import CheckVerdict, Phase, Verdict, verify_gates
from runbook.models import Gate, Outcome, PerfReport, RunReport, StageRecord, StageStatus
from runbook.names import (
    BUILD_TAG,
    DEPLOY_STAGES,
    DEPLOY_TAG,
    GATE_ALERT_KINDS,
    NOT_DEPLOYING,
    TARGET_STAGES,
    GateName,
    Stage,
)
from runbook.ops.deploys import PipelineRun, record_of
from runbook.ops.health import RunKind, deploy_run_records
from runbook.perf.degradation import Degradation, MetricComparison
from runbook.policy import Thresholds
from runbook.run_metrics import run_sample
from tasks import build, deploy


def test_every_gate_name_has_an_alert_kind() -> None:
    assert set(GATE_ALERT_KINDS) == set(GateName)
    for name in GateName:
        assert isinstance(name.alert_kind, AlertKind)
        assert Gate(name=name, passed=False, value=1, threshold=0).alert_kind is name.alert_kind


def test_a_gate_read_back_keeps_its_kind_and_a_family_gate_carries_its_own() -> None:
    degradation = Degradation(baseline_revision="r0", limit_ratio=1.2, comparisons=[
        MetricComparison(metric="p95_latency_s", current_s=0.3, baseline_s=0.1, ratio=3.0,
                         degraded=True)])
    perf = PerfReport(requests=10, failures=0, duration_s=1.0, avg_latency_s=0.1)
    made = gates.perf_gates(perf, Thresholds(), degradation=degradation)
    (ratio,) = [g for g in made if g.name.startswith("perf_baseline_")]
    assert {g.name for g in made} - {ratio.name} <= set(GateName)
    assert ratio.name == "perf_baseline_p95_ratio"
    assert ratio.alert_kind is AlertKind.PERFORMANCE_DEGRADATION
    assert Gate.model_validate_json(ratio.model_dump_json()) == ratio
    assert Gate(name="some_new_gate", passed=False, value=1, threshold=0).alert_kind \
        is AlertKind.PIPELINE_FAILURE


def _blocked(*names: str) -> RunReport:
    return RunReport(outcome=Outcome.BLOCKED, service="shop", environment="production",
                     strategy="rolling", target="docker",
                     gates=[Gate(name=n, passed=False, value=1, threshold=0) for n in names])


@pytest.mark.parametrize(("failed", "kind"), [
    (("tests", "perf_error_rate", "scan_secrets"), AlertKind.VULNERABILITY),
    (("coverage_pct", "candidate_health"), AlertKind.DEPLOYMENT_FAILURE),
    (("tests", "coverage_pct"), AlertKind.COVERAGE_BELOW_THRESHOLD),
    (("code_lint",), AlertKind.PIPELINE_FAILURE),
])
def test_several_failed_gates_raise_the_most_serious_kind(failed: tuple[str, ...],
                                                         kind: AlertKind) -> None:
    assert alert_kind(_blocked(*failed)) is kind


def _stages_opened(function: Callable[..., object], seen: set[str]) -> set[Stage]:
    """The stages a strategy function opens or skips, following the run's methods it calls
    (``run.verify`` -> ``self._verify`` -> ...) and the other strategy it delegates to."""
    source = inspect.getsource(function)
    found = {Stage[name] for name in re.findall(r"\bStage\.([A-Z_]+)", source)}
    for name in re.findall(r"\b(?:run|self)\.(\w+)\(", source):
        method = getattr(_Run, name, None)
        if inspect.isfunction(method) and name not in seen:
            seen.add(name)
            found |= _stages_opened(method, seen)
    for name in re.findall(r"\bbluegreen\.(\w+)\(", source):
        found |= _stages_opened(getattr(bluegreen, name), seen)
    return found


@pytest.mark.parametrize("strategy", [bluegreen, rolling])
def test_deploy_stages_cover_every_stage_a_strategy_runs(strategy: ModuleType) -> None:
    opened: set[Stage] = set()
    for step in (strategy.release, strategy.keep, strategy.switch_back):
        opened |= _stages_opened(step, set())
    assert opened, "the strategy opens no stage: the scan of its source is broken"
    assert opened - NOT_DEPLOYING <= set(DEPLOY_STAGES)
    assert not set(DEPLOY_STAGES) & NOT_DEPLOYING


def test_the_rolling_stages_are_deploy_stages() -> None:
    assert {Stage.ROLLOUT, Stage.RETIRE} <= set(DEPLOY_STAGES)
    assert Stage.ROLLOUT in TARGET_STAGES and Stage.PERF not in TARGET_STAGES


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _rolling_run(outcome: Outcome, failed: Stage | None = None) -> RunReport:
    def stage(name: Stage, seconds: float, status: StageStatus = StageStatus.PASSED
              ) -> StageRecord:
        return StageRecord(name=name, status=StageStatus.FAILED if name is failed else status,
                           started_at=NOW, duration_s=seconds)
    return RunReport(
        outcome=outcome, service="shop", environment="production", strategy="rolling",
        target="kubernetes", revision="r2", finished_at=NOW + timedelta(minutes=5),
        stages=[stage(Stage.BUILD, 30), stage(Stage.PREVIEW, 0, StageStatus.SKIPPED),
                stage(Stage.PERF, 0, StageStatus.SKIPPED), stage(Stage.ROLLOUT, 40),
                stage(Stage.VERIFY, 60), stage(Stage.RETIRE, 5)])


def test_a_rolling_deploy_is_counted_by_daily_health_with_its_rollout() -> None:
    (counted,) = deploy_run_records([PipelineRun(record=record_of(_rolling_run(
        Outcome.RELEASED)))])
    assert counted.kind is RunKind.DEPLOY and counted.ok
    assert counted.duration_s == 105  # rollout + verify + retire; the build is no deploy
    pushed = {s.stage: s.duration_s for s in run_sample(_rolling_run(Outcome.RELEASED)).stages}
    assert pushed["deploy"] == 105


def test_a_broken_rollout_is_a_deployment_failure() -> None:
    report = _rolling_run(Outcome.FAILED, failed=Stage.ROLLOUT)
    assert alert_kind(report) is AlertKind.DEPLOYMENT_FAILURE


def test_a_verification_check_gate_carries_the_deployment_kind() -> None:
    verdict = Verdict(phase=Phase.FAILED, reasons=[], results=[], checks=[CheckVerdict(
        check="error-rate", phase=Phase.FAILED, decided=True, value=0.3,
        condition="result < 0.05", measurements=3)])
    (gate,) = verify_gates(verdict)
    assert gate.name == "verify_error_rate" and gate.alert_kind is AlertKind.DEPLOYMENT_FAILURE


def test_deploy_tasks_carry_the_deploy_tag_and_the_build_the_build_tag() -> None:
    changes_the_target = (deploy.deploy_candidate, deploy.restore_standby,
                          deploy.switch_traffic, deploy.discard_candidate, deploy.retire_slot,
                          deploy.roll_out_release, deploy.undo_rollout)
    assert all(DEPLOY_TAG in t.tags for t in changes_the_target)
    assert DEPLOY_TAG not in deploy.read_live_slot.tags
    assert BUILD_TAG in build.build_image.tags
