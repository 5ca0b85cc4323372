"""Pure computations of the scheduled operations, and the rotation driver over a store."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from runbook.errors import DeployError
from runbook.models import Finding, Severity
from runbook.ops.cleanup import TagInfo, plan_cleanup
from runbook.ops.health import (
    DeployEvent,
    DeployOutcome,
    RunKind,
    RunRecord,
    dora,
    pipeline_health,
)
from runbook.ops.policy import HealthTargets, ScanSla
from runbook.ops.rotation import Step
from runbook.ops.scan_review import StoredScan, review
from runbook.scan.models import Suppression
from runbook.secrets.rotate import rotate
from runbook.secrets.spec import SecretSpec
from runbook.secrets.store import SecretStore

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)


def run(kind: RunKind, ok: bool, hours_ago: float, duration_s: float) -> RunRecord:
    return RunRecord(kind=kind, ok=ok, started_at=NOW - timedelta(hours=hours_ago),
                     duration_s=duration_s)


def test_health_rates_and_averages_per_window_and_breaches() -> None:
    records = [run(RunKind.BUILD, True, 1, 100), run(RunKind.BUILD, False, 2, 200),
               run(RunKind.BUILD, True, 50, 900), run(RunKind.DEPLOY, True, 3, 60),
               run(RunKind.BUILD, True, 24 * 8, 5)]  # outside both windows
    health = pipeline_health(records, NOW, HealthTargets())
    by = {(w.kind, w.days): w for w in health.windows}
    assert (by[RunKind.BUILD, 1].runs, by[RunKind.BUILD, 1].success_rate) == (2, 0.5)
    assert by[RunKind.BUILD, 1].avg_duration_s == 150
    assert (by[RunKind.BUILD, 7].success_rate, by[RunKind.BUILD, 7].avg_duration_s) == (
        pytest.approx(2 / 3), 400)
    assert by[RunKind.DEPLOY, 7].success_rate == 1.0
    assert {(b.kind, b.days, b.metric) for b in health.breaches} == {
        (RunKind.BUILD, 1, "success_rate"), (RunKind.BUILD, 7, "success_rate")}


def test_no_runs_is_no_rate_and_no_breach() -> None:
    health = pipeline_health([], NOW, HealthTargets())
    assert all(w.success_rate is None for w in health.windows)
    assert health.breaches == []


def test_dora_frequency_lead_time_failure_rate_and_restore() -> None:
    def event(hours_ago: float, outcome: DeployOutcome, took_min: float = 10) -> DeployEvent:
        end = NOW - timedelta(hours=hours_ago)
        return DeployEvent(service="a", environment="production", outcome=outcome,
                           started_at=end - timedelta(minutes=took_min), finished_at=end)

    events = [event(30, DeployOutcome.SUCCESS, 8), event(20, DeployOutcome.FAILURE),
              event(19, DeployOutcome.BLOCKED), event(18, DeployOutcome.SUCCESS, 12)]
    (metrics,) = dora(events, NOW, days=7)
    assert metrics.deployments == 2
    assert metrics.deployment_frequency_per_day == pytest.approx(2 / 7)
    assert metrics.lead_time_s == 600  # median of 8 and 12 minutes
    assert metrics.change_failure_rate == pytest.approx(1 / 3)  # blocked is not a change
    assert metrics.time_to_restore_s == 2 * 3600


def finding(rule: str, severity: Severity) -> Finding:
    return Finding(tool="trivy", rule_id=rule, severity=severity, title=rule,
                   location="pkg@1")


def test_weekly_review_counts_new_resolved_and_aging_exactly() -> None:
    old_critical, old_high = finding("CVE-1", Severity.CRITICAL), finding("CVE-2", Severity.HIGH)
    fixed, fresh = finding("CVE-3", Severity.HIGH), finding("CVE-4", Severity.CRITICAL)
    scans = [
        StoredScan(service="a", digest="sha256:1", scanned_at=NOW - timedelta(days=20),
                   findings=[old_critical]),
        StoredScan(service="a", digest="sha256:2", scanned_at=NOW - timedelta(days=9),
                   findings=[old_critical, old_high, fixed]),
        StoredScan(service="a", digest="sha256:3", scanned_at=NOW - timedelta(days=1),
                   findings=[old_critical, old_high, fresh]),
    ]
    expiring = Suppression(fingerprint="x", reason="r", owner="o",
                           expires=date(2025, 7, 3))
    later = expiring.model_copy(update={"expires": date(2025, 12, 1)})
    result = review("a", scans, [expiring, later], NOW, ScanSla())
    assert [f.rule_id for f in result.new] == ["CVE-4"]
    assert [f.rule_id for f in result.resolved] == ["CVE-3"]
    ages = {o.finding.rule_id: (o.age_days, o.breached) for o in result.still_open}
    assert ages == {"CVE-1": (20, True), "CVE-2": (9, False)}
    assert result.expiring_suppressions == [expiring]


def tag(name: str, digest: str, day: int, blobs: dict[str, int]) -> TagInfo:
    return TagInfo(tag=name, digest=digest, created=NOW + timedelta(days=day), blobs=blobs)


def test_cleanup_keeps_newest_and_protected_and_never_a_shared_digest() -> None:
    tags = [tag("r1", "d1", 1, {"base": 100, "l1": 10}),
            tag("r2", "d2", 2, {"base": 100, "l2": 20}),
            tag("r3", "d3", 3, {"base": 100, "l3": 30}), tag("r4", "d4", 4, {"base": 100}),
            tag("alias", "d2", 0, {"base": 100, "l2": 20})]
    plan = plan_cleanup("svc", tags, protected={"r1"}, keep_last=1)
    assert plan.keep == ["r1", "r4"]
    assert plan.delete_digests == ["d2", "d3"]
    assert plan.delete_tags == ["alias", "r2", "r3"]
    assert plan.bytes_freed == 50  # l2 + l3; the shared base stays


class FakePublisher:
    """Records what the consumers accept; fails on demand (a fault between steps)."""

    def __init__(self, fail_verify: bool = False) -> None:
        self.accepted: list[str] = []
        self.fail_verify = fail_verify

    def publish(self, env: dict[str, str]) -> None:
        self.accepted = env["API_TOKENS"].split(",")

    def verify(self) -> None:
        if self.fail_verify:
            raise DeployError("injected fault")

    def revoke(self, env: dict[str, str]) -> None:
        self.publish(env)


def test_rotation_overlaps_resumes_after_a_fault_and_never_revokes_early(tmp_path: Path) -> None:
    specs = [SecretSpec(name="tokens", env="API_TOKENS", generator="token")]
    store = SecretStore(tmp_path, "svc", "staging")
    clock = [NOW]
    publisher = FakePublisher()
    rotate(specs, store, publisher, lambda: clock[0], grace_s=60)
    first = store.load()["tokens"]
    assert first.state.step is Step.VERIFIED and publisher.accepted == [
        first.pending.get_secret_value()]  # first value: nothing old to overlap with
    clock[0] += timedelta(seconds=61)
    rotate(specs, store, publisher, lambda: clock[0], grace_s=60)
    old = store.load()["tokens"].current.get_secret_value()
    assert store.load()["tokens"].state.step is Step.IDLE

    faulty = FakePublisher(fail_verify=True)
    faulty.accepted = [old]
    with pytest.raises(DeployError):
        rotate(specs, store, faulty, lambda: clock[0], grace_s=0, force=True)
    assert store.load()["tokens"].state.step is Step.OVERLAP_PUBLISHED
    assert old in faulty.accepted and len(faulty.accepted) == 2

    faulty.fail_verify = False
    statuses = rotate(specs, store, faulty, lambda: clock[0], grace_s=0)
    new = store.load()["tokens"].current.get_secret_value()
    assert faulty.accepted == [new] and new != old
    assert statuses[0].step is Step.IDLE and statuses[0].age_days == 0
    # The values live in the state database: it and its WAL are readable by the owner only.
    for database in tmp_path.glob("state.db*"):
        assert stat.S_IMODE(database.stat().st_mode) == 0o600, database
    assert old not in repr(store.load()) and new not in repr(statuses)


def test_manual_secret_is_reported_with_its_age_not_rotated(tmp_path: Path) -> None:
    specs = [SecretSpec(name="db", env="DB_PASSWORD", max_age_days=30)]
    statuses = rotate(specs, SecretStore(tmp_path, "svc", "staging"), FakePublisher(),
                      lambda: NOW, grace_s=0)
    assert (statuses[0].automatic, statuses[0].overdue, statuses[0].actions) == (
        False, True, [])
