"""Pure decisions that keep a release safe under faults: the release record, the deploy
slot's holder, alert identity with its cause, and the rollback_failed outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from runbook.alerts.models import AlertKind, Severity, make_alert
from runbook.alerts.notifier import Notifier
from runbook.alerts.release import (
    interrupted_release_alert,
    plan_release_alerts,
)
from runbook.alerts.settings import AlertSettings
from runbook.incidents import Priority, category_of, classify
from runbook.models import Outcome, RunReport, ServiceName, StageRecord, StageStatus
from runbook.release_record import (
    RecoveryAction,
    ReleasePhase,
    ReleaseRecord,
    ReleaseRecords,
    is_verified,
    recovery_for,
)
from runbook.run_metrics import run_sample
from runbook.slots import SlotHolder, SlotHolders, holder_gone
from runbook.store import StateStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _record(phase: ReleasePhase, owner: str | None = "run-a") -> ReleaseRecord:
    return ReleaseRecord(service="shop", environment="staging", candidate="r2", previous="r1",
                         phase=phase, owner_run=owner)


@pytest.mark.parametrize(("phase", "current", "action"), [
    (ReleasePhase.PROMOTED_UNVERIFIED, "run-b", RecoveryAction.ROLL_BACK),
    (ReleasePhase.PROMOTED_UNVERIFIED, None, RecoveryAction.ROLL_BACK),  # tidy
    (ReleasePhase.PROMOTED_UNVERIFIED, "run-a", RecoveryAction.NOTHING),  # its own
    (ReleasePhase.PREVIEWING, "run-b", RecoveryAction.NOTHING),  # no traffic moved
    (ReleasePhase.VERIFIED, "run-b", RecoveryAction.NOTHING),
    (ReleasePhase.ROLLED_BACK, "run-b", RecoveryAction.NOTHING),
])
def test_only_another_runs_unverified_promotion_is_rolled_back(
    phase: ReleasePhase, current: str | None, action: RecoveryAction,
) -> None:
    assert recovery_for(_record(phase), current) is action
    assert recovery_for(None, "run-b") is RecoveryAction.NOTHING


def test_already_live_means_verified_and_a_later_candidate_does_not_forget_it() -> None:
    records = ReleaseRecords(StateStore("sqlite:///:memory:"))
    verified = records.put(_record(ReleasePhase.VERIFIED))
    assert is_verified(verified, "r2") and not is_verified(verified, "r1")
    blocked = records.put(_record(ReleasePhase.PREVIEWING).model_copy(
        update={"candidate": "r3", "previous": "r2"}))
    assert is_verified(blocked, "r2") and not is_verified(blocked, "r3")
    promoted = records.put(blocked.model_copy(update={
        "candidate": "r2", "phase": ReleasePhase.PROMOTED_UNVERIFIED}))
    assert not is_verified(promoted, "r2")  # a promotion of it is in flight, unverified
    assert not is_verified(None, "r2")


def test_records_survive_in_the_store_and_move_under_the_row_lock() -> None:
    records = ReleaseRecords(StateStore("sqlite:///:memory:"))
    records.put(_record(ReleasePhase.PROMOTED_UNVERIFIED))
    moved = records.move("shop", "staging", ReleasePhase.ROLLED_BACK, "interrupted")
    assert moved is not None and moved.phase is ReleasePhase.ROLLED_BACK
    assert moved.verified is None  # r2 was never verified
    assert records.get("shop", "staging") == moved
    assert records.move("shop", "production", ReleasePhase.VERIFIED) is None


def test_a_holder_is_gone_when_prefect_says_final_or_its_heartbeat_stopped() -> None:
    holder = SlotHolder(limit="deploy-shop-staging", lease_id="l1", flow_run_id="f1",
                        heartbeat_at=NOW)
    assert not holder_gone(holder, NOW + timedelta(seconds=10), run_final=False)
    assert holder_gone(holder, NOW + timedelta(seconds=10), run_final=True)
    assert holder_gone(holder, NOW + timedelta(seconds=26), run_final=False)


def test_a_reclaimed_holder_learns_it_lost_the_slot() -> None:
    holders = SlotHolders(StateStore("sqlite:///:memory:"))
    holders.hold("deploy-shop-staging", "lease-1", "run-a")
    assert holders.beat("deploy-shop-staging", "lease-1")
    holders.hold("deploy-shop-staging", "lease-2", "run-b")  # reclaimed, taken by run-b
    assert not holders.beat("deploy-shop-staging", "lease-1")
    holders.release("deploy-shop-staging", "lease-1")  # never removes run-b's record
    assert holders.get("deploy-shop-staging").lease_id == "lease-2"  # type: ignore[union-attr]


def test_two_problems_of_one_service_never_share_an_identity(tmp_path) -> None:  # type: ignore[no-untyped-def]
    overdue = make_alert(AlertKind.SECURITY_INCIDENT, "shop", "production", "rotate by hand",
                         severity=Severity.WARNING, cause="secret-overdue")
    incident = make_alert(AlertKind.SECURITY_INCIDENT, "shop", "production", "leak",
                          cause="security-incident")
    assert overdue.dedup_key != incident.dedup_key
    notifier = Notifier(tmp_path, AlertSettings(_env_file=None))
    assert notifier.publish(overdue).enqueued
    assert notifier.publish(incident).enqueued  # the page is not dropped as a duplicate
    again = make_alert(AlertKind.SECURITY_INCIDENT, "shop", "production", "still leaking",
                       cause="security-incident")
    assert not notifier.publish(again).enqueued  # the same problem once


def _report(outcome: Outcome, *failed_stages: str) -> RunReport:
    stages = [StageRecord(name=name, status=StageStatus.FAILED, started_at=NOW, duration_s=1)
              for name in failed_stages]
    return RunReport(outcome=outcome, service="shop", environment="production",
                     strategy="blue-green", target="docker", revision="r1", image="img",
                     reason="switch back failed; live now r2", stages=stages)


def test_a_failed_rollback_is_its_own_critical_p1_alert_naming_what_is_live() -> None:
    plan = plan_release_alerts(_report(Outcome.ROLLBACK_FAILED, "verify", "rollback"), [])
    alert = plan.trigger
    assert alert is not None and alert.kind is AlertKind.ROLLBACK_FAILED
    assert alert.severity is Severity.CRITICAL and "live now r1" in alert.summary
    assert classify(category_of(alert), "production") is Priority.P1
    assert classify(category_of(alert), "staging") is Priority.P3
    rolled_back = plan_release_alerts(_report(Outcome.ROLLED_BACK, "verify"), []).trigger
    assert rolled_back is not None and rolled_back.dedup_key != alert.dedup_key


def test_a_broken_build_and_a_broken_preview_are_two_problems() -> None:
    build = plan_release_alerts(_report(Outcome.FAILED, "build"), []).trigger
    again = plan_release_alerts(_report(Outcome.FAILED, "build"), []).trigger
    preview = plan_release_alerts(_report(Outcome.FAILED, "preview"), []).trigger
    assert build is not None and again is not None and preview is not None
    assert build.dedup_key == again.dedup_key != preview.dedup_key


def test_an_interrupted_release_alert_differs_from_the_runs_own() -> None:
    interrupted = interrupted_release_alert("shop", "production", "r2", "run-a", "r1",
                                            "traffic back on r1", None)
    own = plan_release_alerts(_report(Outcome.ROLLED_BACK, "verify"), []).trigger
    assert own is not None and interrupted.dedup_key != own.dedup_key
    assert "live now r1" in interrupted.summary


def test_rollback_failed_counts_as_a_failed_deploy() -> None:
    report = _report(Outcome.ROLLBACK_FAILED, "rollback")
    assert run_sample(report).stages[-1].outcome == "failed"


@pytest.mark.parametrize("name", ["../etc", "Shop", "a_b", "-x", "x" * 64, ""])
def test_a_flow_refuses_a_name_that_is_not_dns_safe(name: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(ServiceName).validate_python(name)
    assert TypeAdapter(ServiceName).validate_python("agent-api") == "agent-api"


def test_build_and_push_stop_at_their_deadline_and_are_not_retried() -> None:
    import time

    from runbook.adapters.docker_engine import DeadlinePassed, check_deadline
    from runbook.errors import TransientError
    from tasks.build import _read_timeout

    check_deadline(None, "build")
    check_deadline(time.time() + 60, "build")
    with pytest.raises(DeadlinePassed, match="ran past its deadline"):
        check_deadline(time.time() - 1, "push of shop:r1")
    assert not issubclass(DeadlinePassed, TransientError)  # the retries spent the time
    assert _read_timeout(time.time() + 5) <= 6  # a silent engine cannot outlast it by 120 s
    assert _read_timeout(None) == 120


def test_a_failed_rollback_has_its_own_exit_code() -> None:
    from runbook_cli.exit_codes import exit_code_for

    assert exit_code_for(Outcome.RELEASED) == 0 and exit_code_for(Outcome.ROLLBACK_FAILED) == 3
    assert Outcome.ROLLBACK_FAILED.value == "rollback_failed"
