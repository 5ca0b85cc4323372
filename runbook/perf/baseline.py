"""Baselines: every PerfReport kept per service, environment and revision (for trends); the
baseline of a release is the report of the last revision that was *released* there. Both
live in the state store, so every worker compares against the same baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from runbook.models import PerfReport
from runbook.store import Collection, StateStore, as_store
from runbook.store.layout import PERF_BASELINE, PERF_REPORT


class StoredReport(BaseModel):
    service: str
    environment: str
    revision: str
    recorded_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    report: PerfReport


class ReleasedMarker(BaseModel):
    revision: str
    released_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


HISTORY_LIMIT = 200
"""Reports kept per service and environment (oldest go first; the baseline's stays)."""


class BaselineStore:
    """Reports (kind ``perf-report``, by service, environment and time) and the released
    revision of each service and environment (``perf-baseline``) in the state store."""

    def __init__(self, state: StateStore | Path) -> None:
        self.store = as_store(state)
        self.reports = Collection(self.store, PERF_REPORT, StoredReport)
        self.markers = Collection(self.store, PERF_BASELINE, ReleasedMarker)

    def save(self, service: str, environment: str, revision: str, report: PerfReport) -> str:
        """Keep one test's report; returns its key. The oldest beyond ``HISTORY_LIMIT`` go."""
        stored = StoredReport(service=service, environment=environment, revision=revision,
                              report=report)
        stamp = stored.recorded_at.strftime("%Y%m%dT%H%M%S%fZ")
        key = f"{_prefix(service, environment)}{stamp}_{revision}"
        self.reports.put(key, stored)
        self._prune(service, environment)
        return key

    def history(self, service: str, environment: str) -> list[StoredReport]:
        """Every stored report of the service in the environment, oldest first."""
        return self.reports.values(_prefix(service, environment))

    def latest(self, service: str, environment: str, revision: str) -> StoredReport | None:
        matching = [s for s in self.history(service, environment) if s.revision == revision]
        return matching[-1] if matching else None

    def mark_released(self, service: str, environment: str, revision: str) -> bool:
        """Make ``revision``'s latest report the baseline; False if it has no report."""
        if self.latest(service, environment, revision) is None:
            return False
        self.markers.put(f"{service}/{environment}", ReleasedMarker(revision=revision))
        return True

    def baseline(self, service: str, environment: str) -> StoredReport | None:
        """The last released revision's latest report, if any."""
        marker = self.markers.get(f"{service}/{environment}")
        return self.latest(service, environment, marker.revision) if marker else None

    def _prune(self, service: str, environment: str) -> None:
        keys = self.reports.keys(_prefix(service, environment))
        if len(keys) <= HISTORY_LIMIT:
            return
        marker = self.markers.get(f"{service}/{environment}")
        for key in keys[:len(keys) - HISTORY_LIMIT]:
            if marker is None or not key.endswith(f"_{marker.revision}"):
                self.reports.delete(key)


def _prefix(service: str, environment: str) -> str:
    return f"{service}/{environment}/"
