"""DORA from run records and incidents, beside the elite levels; the one definition of a
deploy and its success (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbook.models import Outcome, RunReport, StageRecord, StageStatus
from runbook.ops.deploys import (
    DeployResult,
    PipelineRun,
    deploy_result,
    embed_record,
    extract_record,
    record_of,
)
from runbook.ops.dora_trend import dora_by_day
from runbook.ops.health import (
    Restore,
    commit_before,
    deploy_events,
    deploy_run_records,
    dora,
    elite_checks,
)
from runbook.run_metrics import run_sample

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def report(outcome: Outcome, hours_ago: float, stages: tuple[str, ...] = ("build", "preview",
                                                                          "verify")) -> RunReport:
    start = NOW - timedelta(hours=hours_ago)
    records = [StageRecord(name=name, status=StageStatus.PASSED,
                           started_at=start + timedelta(minutes=i), duration_s=60)
               for i, name in enumerate(stages)]
    return RunReport(outcome=outcome, service="shop", environment="production",
                     strategy="blue-green", target="docker", revision="r1", stages=records,
                     finished_at=start + timedelta(minutes=10))


@pytest.mark.parametrize(("outcome", "result"), [
    (Outcome.RELEASED, DeployResult.PASSED), (Outcome.ROLLED_BACK, DeployResult.FAILED),
    (Outcome.FAILED, DeployResult.FAILED), (Outcome.BLOCKED, DeployResult.BLOCKED)])
def test_one_definition_for_daily_health_dora_and_the_pushed_run_metrics(
    outcome: Outcome, result: DeployResult,
) -> None:
    run = report(outcome, 1)
    assert deploy_result(outcome) is result
    pushed = {s.stage: s.outcome for s in run_sample(run).stages}
    assert pushed["deploy"] == result.value
    (health,) = deploy_run_records([PipelineRun(record=record_of(run))]) or [None]
    if result is DeployResult.BLOCKED:
        assert health is None  # neither a success nor a failure
    else:
        assert health is not None and health.ok is (result is DeployResult.PASSED)
        assert health.duration_s == 120  # preview + verify, the build is not the deploy


def test_the_record_travels_in_the_report_artifact_and_reads_back() -> None:
    run = report(Outcome.ROLLED_BACK, 2)
    markdown = "# report\n" + embed_record(run)
    assert extract_record(markdown) == record_of(run)
    assert extract_record("# an old report without a record") is None
    no_deploy = report(Outcome.FAILED, 1, stages=("build",))
    assert record_of(no_deploy).deploy_s is None


def test_lead_time_starts_at_the_commit_of_the_delivered_source() -> None:
    runs = [PipelineRun(record=record_of(report(Outcome.RELEASED, 5)), service_dir="svc"),
            PipelineRun(record=record_of(report(Outcome.RELEASED, 3)), service_dir=None)]
    commits = {"svc": [NOW - timedelta(hours=30), NOW - timedelta(hours=4)]}
    events = deploy_events(runs, commits)
    assert events[0].committed_at == NOW - timedelta(hours=30)  # the later one is after it
    assert events[1].committed_at is None
    (metrics,) = dora(events, NOW, days=7)
    # 30 h - 4 h 50 min from the commit; 10 min from the pipeline start: median of the two.
    assert metrics.lead_time_s == pytest.approx(((25 * 60 + 10) + 10) / 2 * 60)
    assert metrics.lead_time_from_commit == 1
    assert commit_before([], NOW) is None


def test_time_to_restore_comes_from_resolved_incidents_when_there_are_any() -> None:
    events = deploy_events([PipelineRun(record=record_of(report(o, h))) for o, h in
                            [(Outcome.RELEASED, 48), (Outcome.ROLLED_BACK, 30),
                             (Outcome.BLOCKED, 29), (Outcome.RELEASED, 20)]], {})
    (by_deploys,) = dora(events, NOW, days=7)
    assert (by_deploys.restore_from, by_deploys.time_to_restore_s) == ("deploys", 10 * 3600)
    assert by_deploys.change_failure_rate == pytest.approx(1 / 3)
    restore = Restore(service="shop", environment="production",
                      failed_at=NOW - timedelta(hours=30), restored_at=NOW - timedelta(hours=29,
                                                                                        minutes=40))
    (by_incidents,) = dora(events, NOW, days=7, restores=[restore])
    assert (by_incidents.restore_from, by_incidents.time_to_restore_s) == ("incidents", 1200)


def test_elite_levels_beside_each_key_and_no_data_is_never_a_pass() -> None:
    events = deploy_events([PipelineRun(record=record_of(report(Outcome.RELEASED, h)))
                            for h in range(1, 15)], {})
    (elite,) = dora(events, NOW, days=7)
    checks = {c.key: c for c in elite_checks(elite)}
    assert [c.meets for c in checks.values()] == [True, True, True, None]
    assert checks["change failure rate"].value == "0%"
    assert checks["time to restore"].value == "no data"
    trend = dora_by_day(events, NOW, 2)
    assert [d.deployments for d in trend] == [2, 12]
