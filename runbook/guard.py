"""The guard after promotion: the live revision stays under its checks for ``guard_s``.

Design (docs/architecture.md, "The guard"): the pipeline ends when its analysis window ends
and writes a durable *guard record* (one per service and environment, under the state
directory), then starts the ``guard`` flow as its own process and its own Prefect flow run.
That process is in its own session, so neither the end of the pipeline run nor a restart of
the worker that ran it stops it; ``runbook stack up`` (and ``python -m flows.guard resume``)
start a guard again for every unexpired record whose process is gone. The record is the
truth: a newer release of the same service replaces it, so an older guard sees it is
superseded and stops without touching traffic.

This module is the library half: the record, its store, the pure decision of what a guard
does next, and the launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

from runbook.models import Slot, Strategy, TargetKind
from runbook.policy import Policy
from runbook.service import ServiceSpec

GUARD_MODULE = "flows.guard"


class GuardRecord(BaseModel):
    """What a guard watches and what it may roll back to."""

    service: str
    environment: str
    target: TargetKind
    strategy: Strategy
    slot: Slot
    """The released revision under guard."""
    previous: Slot | None
    """The revision kept ready for the instant switch back."""
    endpoint: str
    spec: ServiceSpec
    policy: Policy
    started_at: datetime
    until: datetime
    pipeline_run_url: str | None = None
    pid: int | None = None
    """The guard process; a record whose process is gone is resumed."""

    @property
    def revision(self) -> str:
        return self.slot.revision


class GuardStep(StrEnum):
    WATCH = "watch"
    SUPERSEDED = "superseded"
    """A newer release (or a rollback) changed what is live: the guard has nothing to do."""
    EXPIRED = "expired"


def next_step(record: GuardRecord | None, revision: str, live_revision: str | None,
              now: datetime) -> GuardStep:
    """What a guard of ``revision`` does next: never fight a newer release."""
    if record is None or record.revision != revision or live_revision != revision:
        return GuardStep.SUPERSEDED
    if now >= record.until:
        return GuardStep.EXPIRED
    return GuardStep.WATCH


def guard_until(now: datetime, guard_s: float) -> datetime:
    return now + timedelta(seconds=guard_s)


class GuardStore:
    """One JSON record per service and environment, written atomically."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "guards"

    def path(self, service: str, environment: str) -> Path:
        return self.directory / f"{service}.{environment}.json"

    def write(self, record: GuardRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(record.service, record.environment)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(record.model_dump_json(by_alias=True, indent=2))
        temporary.replace(target)

    def read(self, service: str, environment: str) -> GuardRecord | None:
        try:
            text = self.path(service, environment).read_text()
        except FileNotFoundError:
            return None
        return GuardRecord.model_validate(json.loads(text))

    def remove(self, service: str, environment: str, revision: str) -> None:
        """Remove the record if it is still this revision's (a newer one stays)."""
        record = self.read(service, environment)
        if record is not None and record.revision == revision:
            with contextlib.suppress(FileNotFoundError):
                self.path(service, environment).unlink()

    def records(self) -> list[GuardRecord]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(FileNotFoundError, ValueError):
                found.append(GuardRecord.model_validate(json.loads(path.read_text())))
        return found


def launch(record: GuardRecord, store: GuardStore, prefect_api_url: str | None = None) -> int:
    """Start the guard flow in its own process and session; returns its pid.

    The process inherits this environment (``PREFECT_API_URL``, ``RUNBOOK_*``), so its flow
    run lands on the same Prefect server; its output goes to a log beside the record.
    """
    store.directory.mkdir(parents=True, exist_ok=True)
    log_path = store.path(record.service, record.environment).with_suffix(".log")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", GUARD_MODULE, "watch", record.service, record.environment,
             record.revision],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=_environment(prefect_api_url),
        )
    return process.pid


def _environment(prefect_api_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if prefect_api_url is not None:
        env.setdefault("PREFECT_API_URL", prefect_api_url)
    return env


def process_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_a_zombie(pid)


def _not_a_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def to_resume(store: GuardStore, now: datetime | None = None) -> list[GuardRecord]:
    """Unexpired records whose guard process is gone (worker or machine restarted)."""
    moment = now or datetime.now(UTC)
    return [r for r in store.records() if r.until > moment and not process_alive(r.pid)]


def resume_all(state_dir: Path, prefect_api_url: str) -> list[str]:
    """Start a guard again for every unexpired record whose process is gone (worker or
    machine restarted): it watches for the rest of its time. Returns what it resumed."""
    store = GuardStore(state_dir)
    resumed = []
    for record in to_resume(store):
        record.pid = launch(record, store, prefect_api_url)
        store.write(record)
        resumed.append(f"guard of {record.service}/{record.environment} {record.revision}")
    return resumed
