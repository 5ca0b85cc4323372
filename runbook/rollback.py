"""Rollback decisions and records (pure): which way a rollback goes, and what it reports.

A rollback goes to the kept standby when that is the revision asked for (one switch), or
redeploys any revision whose image the registry still has, by digest; either way the
standard checks then run on it for a short window and the report says whether the
application is healthy.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from runbook.analysis import Verdict
from runbook.errors import ConfigurationError, RunbookError
from runbook.models import Slot
from runbook.policy import Policy

CHECK_WINDOW_MAX_S = 30.0
"""The checks after an automatic rollback watch at most this long: the revision was
verified when it was released; this confirms it is healthy again, not a new verification."""


def rollback_check_window(policy: Policy) -> float:
    return min(policy.analysis.window_s, CHECK_WINDOW_MAX_S)


class RollbackKind(StrEnum):
    STANDBY = "standby"
    """The revision kept running beside the live one: one atomic switch."""
    REDEPLOY = "redeploy"
    """An older revision: started again from its image (by digest), then switched to."""


class RollbackCheck(BaseModel):
    """The application's health after a rollback."""

    revision: str
    healthy: bool
    phase: str
    """The analysis phase (Successful, Failed, Inconclusive, Error)."""
    reasons: list[str] = Field(default_factory=list)
    measurements: int = 0

    @property
    def summary(self) -> str:
        state = "healthy" if self.healthy else "NOT healthy"
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"{state} ({self.phase}, {self.measurements} measurement(s)){why}"


def rollback_check(slot: Slot, verdict: Verdict) -> RollbackCheck:
    return RollbackCheck(revision=slot.revision, healthy=verdict.keep,
                         phase=verdict.phase.value, reasons=verdict.reasons,
                         measurements=len(verdict.results))


class RollbackReport(BaseModel):
    """What a rollback did (the flow's return value and artifact)."""

    service: str
    environment: str
    kind: RollbackKind
    previous: str | None
    """The revision that served before."""
    revision: str
    """The revision serving after."""
    image: str
    color: str
    check: RollbackCheck | None = None
    """None: the checks could not run (the service.yaml is not known)."""

    @property
    def healthy(self) -> bool:
        return self.check is not None and self.check.healthy


def choose(service: str, environment: str, wanted: str | None, live: Slot | None,
           standby: Slot | None) -> RollbackKind:
    """Standby when no revision is named or the standby is the one named; a redeploy of
    the named revision otherwise. The live revision is not a rollback target."""
    if wanted is None:
        if standby is None:
            # Not bad input: the rollback someone needs cannot happen, so it is alerted.
            raise RunbookError(f"{service}/{environment} keeps no previous revision to roll "
                               "back to (name an older one with --to)")
        return RollbackKind.STANDBY
    if standby is not None and wanted in (standby.revision, standby.image):
        return RollbackKind.STANDBY
    if live is not None and wanted in (live.revision, live.image):
        raise ConfigurationError(f"{wanted} is already live in {service}/{environment}")
    return RollbackKind.REDEPLOY


def rollback_markdown(report: RollbackReport) -> str:
    check = report.check
    verdict = check.summary if check else "not checked: the service.yaml is not known"
    return (
        f"# Rollback {report.service}/{report.environment}: "
        f"{'healthy' if report.healthy else 'NOT healthy'}\n\n"
        f"| from | to | how | image | health after |\n|---|---|---|---|---|\n"
        f"| {report.previous or '—'} | {report.revision} ({report.color}) | {report.kind.value} "
        f"| `{report.image}` | {verdict} |\n"
    )
