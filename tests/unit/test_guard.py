"""The guard's decisions and durable record: never fight a newer release, resume a guard
whose process is gone, expire on time."""

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runbook.guard import GuardRecord, GuardStep, GuardStore, next_step, to_resume
from runbook.models import Slot, Strategy, TargetKind
from runbook.policy import Policy
from runbook.service import ServiceSpec
from runbook.store import StateStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def slot(revision: str, color: str = "blue") -> Slot:
    return Slot(service="svc", environment="staging", color=color, revision=revision,
                image=f"reg/svc@sha256:{revision}", address="127.0.0.1:1")


def record(revision: str = "r2", until: datetime = NOW + timedelta(minutes=10),
           pid: int | None = None) -> GuardRecord:
    return GuardRecord(
        service="svc", environment="staging", target=TargetKind.DOCKER,
        strategy=Strategy.BLUE_GREEN, slot=slot(revision, "green"), previous=slot("r1"),
        endpoint="http://127.0.0.1:18000",
        spec=ServiceSpec.model_validate({"name": "svc", "port": 8080,
                                         "policy": {"analysis": {"window_s": 9}}}),
        policy=Policy(), started_at=NOW, until=until, pid=pid)


def test_the_guard_watches_its_live_revision_until_it_expires() -> None:
    assert next_step(record(), "r2", "r2", NOW) is GuardStep.WATCH
    assert next_step(record(), "r2", "r2", NOW + timedelta(minutes=10)) is GuardStep.EXPIRED


def test_a_newer_release_or_a_rollback_supersedes_the_guard() -> None:
    assert next_step(record(), "r2", "r3", NOW) is GuardStep.SUPERSEDED  # r3 went live
    assert next_step(record("r3"), "r2", "r2", NOW) is GuardStep.SUPERSEDED  # newer record
    assert next_step(None, "r2", "r2", NOW) is GuardStep.SUPERSEDED
    assert next_step(record(), "r2", None, NOW) is GuardStep.SUPERSEDED  # taken out


def test_the_record_round_trips_and_only_its_own_revision_removes_it(tmp_path: Path) -> None:
    store = GuardStore(tmp_path, StateStore("sqlite:///:memory:"))
    store.write(record("r2"))
    assert store.read("svc", "staging") == record("r2")
    store.remove("svc", "staging", "r1")
    assert store.read("svc", "staging") is not None
    store.remove("svc", "staging", "r2")
    assert store.read("svc", "staging") is None


def test_guards_whose_process_is_gone_are_resumed_until_they_expire(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    store = GuardStore(tmp_path, StateStore("sqlite:///:memory:"))
    store.write(record("r2", until=datetime.now(UTC) + timedelta(minutes=5), pid=finished.pid))
    assert [r.revision for r in to_resume(store)] == ["r2"]
    store.write(record("r2", until=datetime.now(UTC) + timedelta(minutes=5), pid=os.getpid()))
    assert to_resume(store) == []
    store.write(record("r2", until=datetime.now(UTC) - timedelta(seconds=1), pid=None))
    assert to_resume(store) == []


def test_claiming_marks_the_watcher_of_its_own_record_only(tmp_path: Path) -> None:
    store = GuardStore(tmp_path, StateStore("sqlite:///:memory:"))
    store.write(record("r2"))
    assert store.claim("svc", "staging", "r1", 42) is None
    claimed = store.claim("svc", "staging", "r2", 42)
    assert claimed is not None and claimed.pid == 42
    assert store.read("svc", "staging").pid == 42  # type: ignore[union-attr]
