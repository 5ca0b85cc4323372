"""The guard after promotion: the live revision stays under its checks for ``guard_s``.

Design (docs/architecture.md, "The guard"): the pipeline ends when its analysis window ends
and writes a durable *guard record* (one per service and environment, in the state store),
then starts the ``guard`` flow as its own process and its own Prefect flow run. That
process is in its own session, so neither the end of the pipeline run nor a restart of the
worker that ran it stops it; ``runbook stack up`` (and ``python -m flows.guard resume``)
start a guard again for every unexpired record whose process is gone. The record is the
truth: a newer release of the same service replaces it, so an older guard sees it is
superseded and stops without touching traffic.

This module is the library half: the record, its store, the pure decision of what a guard
does next, and the launcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, field_serializer

from runbook.models import Slot, Strategy, TargetKind
from runbook.policy import Policy
from runbook.service import ServiceSpec
from runbook.store import Collection, StateStore
from runbook.store.layout import StateLayout, kind
from runbook.store.open import as_store

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

    @field_serializer("spec")
    def _spec_as_written(self, spec: ServiceSpec) -> dict[str, object]:
        # As service.yaml spells it (``policy:``), so the record validates when read back.
        return spec.model_dump(mode="json", by_alias=True)


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


GUARD_KIND = kind(
    "guard", key="<service>/<environment>", owner="runbook.guard",
    deletable="when its guard ended (expired, rolled back or superseded); a newer release "
              "of the service and environment replaces it",
)


class GuardStore:
    """One guard record per service and environment, in the state store, so a guard can
    be resumed by any worker; the guards' logs stay beside the local state."""

    def __init__(self, state_dir: Path, store: StateStore | None = None) -> None:
        self.layout = StateLayout(state_dir)
        store = store or as_store(state_dir)
        self._records = Collection(store, GUARD_KIND, GuardRecord)

    def log_path(self, service: str, environment: str) -> Path:
        path = self.layout.guard_log(service, environment)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, record: GuardRecord) -> None:
        self._records.put(_key(record.service, record.environment), record)

    def read(self, service: str, environment: str) -> GuardRecord | None:
        return self._records.get(_key(service, environment))

    def claim(self, service: str, environment: str, revision: str,
              pid: int) -> GuardRecord | None:
        """Mark ``revision``'s record as watched by ``pid``; None if it is not its record."""
        with self._records.update(_key(service, environment)) as held:
            if held.value is None or held.value.revision != revision:
                return None
            held.value.pid = pid
            return held.value.model_copy()

    def remove(self, service: str, environment: str, revision: str) -> None:
        """Remove the record if it is still this revision's (a newer one stays)."""
        with self._records.update(_key(service, environment)) as held:
            if held.value is not None and held.value.revision == revision:
                held.value = None

    def records(self) -> list[GuardRecord]:
        return self._records.values()


def _key(service: str, environment: str) -> str:
    return f"{service}/{environment}"


def launch(record: GuardRecord, store: GuardStore, prefect_api_url: str | None = None) -> int:
    """Start the guard flow in its own process and session; returns its pid.

    The process inherits this environment (``PREFECT_API_URL``, ``RUNBOOK_*``), so its flow
    run lands on the same Prefect server; its output goes to a log beside the record.
    """
    with store.log_path(record.service, record.environment).open("ab") as log:
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
