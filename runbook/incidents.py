"""Incidents as the runbook defines them: priority, response deadline, the response steps.

Classification and every state change are pure functions over :class:`Incident`;
:class:`IncidentStore` is the only I/O (the state store's ``incident`` kind).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from runbook.alerts.models import Alert, AlertKind, Severity
from runbook.errors import ConfigurationError
from runbook.store import Collection, StateStore, as_store
from runbook.store.engine import Transaction
from runbook.store.layout import INCIDENT, INCIDENT_OPEN

PRODUCTION = "production"


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class Category(StrEnum):
    """The situations the runbook's incident table names."""

    PRODUCTION_DOWN = "production_down"
    SECURITY_VULNERABILITY = "security_vulnerability"
    DATA_BREACH = "data_breach"
    DEGRADED_PERFORMANCE = "degraded_performance"
    NON_CRITICAL_SECURITY = "non_critical_security"
    DEPLOYMENT_FAILURE = "deployment_failure"
    TEST_FAILURE = "test_failure"
    MINOR_PERFORMANCE = "minor_performance"


class ResponseTimes(BaseModel):
    """How soon someone must respond, per priority (runbook: 15 min, 1 h, 4 h)."""

    p1_minutes: int = Field(default=15, gt=0)
    p2_minutes: int = Field(default=60, gt=0)
    p3_minutes: int = Field(default=240, gt=0)

    def deadline(self, priority: Priority) -> timedelta:
        minutes = {Priority.P1: self.p1_minutes, Priority.P2: self.p2_minutes,
                   Priority.P3: self.p3_minutes}[priority]
        return timedelta(minutes=minutes)


# Security problems are P1 wherever they are found: the code is on its way to production.
_P1_ANYWHERE = {Category.SECURITY_VULNERABILITY, Category.DATA_BREACH}
_P1_IN_PRODUCTION = {Category.PRODUCTION_DOWN}
_P2_IN_PRODUCTION = {Category.DEGRADED_PERFORMANCE, Category.NON_CRITICAL_SECURITY,
                     Category.DEPLOYMENT_FAILURE}


def classify(category: Category, environment: str) -> Priority:
    """The runbook's table. P1: production down, security vulnerability, data breach.
    P2: degraded performance, non-critical security, deployment failure. P3: test failures,
    minor performance, anything outside production.

    Args:
        category: what happened.
        environment: where (``production`` or not).

    Returns:
        The incident priority.
    """
    if category in _P1_ANYWHERE:
        return Priority.P1
    if environment != PRODUCTION:
        return Priority.P3
    if category in _P1_IN_PRODUCTION:
        return Priority.P1
    if category in _P2_IN_PRODUCTION:
        return Priority.P2
    return Priority.P3


_PERFORMANCE_KINDS = {AlertKind.PERFORMANCE_DEGRADATION, AlertKind.HIGH_ERROR_RATE,
                      AlertKind.SLOW_RESPONSES, AlertKind.HIGH_RESOURCE_USAGE}
_CATEGORY_OF_KIND = {
    AlertKind.PIPELINE_FAILURE: Category.DEPLOYMENT_FAILURE,
    AlertKind.DEPLOYMENT_FAILURE: Category.DEPLOYMENT_FAILURE,
    AlertKind.ROLLBACK: Category.DEPLOYMENT_FAILURE,
    # A failed switch back leaves a release nobody vouches for serving: as bad as down.
    AlertKind.ROLLBACK_FAILED: Category.PRODUCTION_DOWN,
    AlertKind.VULNERABILITY: Category.SECURITY_VULNERABILITY,
    AlertKind.SECURITY_INCIDENT: Category.SECURITY_VULNERABILITY,
    AlertKind.PRODUCTION_DOWN: Category.PRODUCTION_DOWN,
    AlertKind.TEST_FAILURE: Category.TEST_FAILURE,
    AlertKind.COVERAGE_BELOW_THRESHOLD: Category.TEST_FAILURE,
}


def category_of(alert: Alert) -> Category:
    """The incident category an alert stands for; performance by its severity."""
    if alert.kind in _PERFORMANCE_KINDS:
        critical = alert.severity is Severity.CRITICAL
        return Category.DEGRADED_PERFORMANCE if critical else Category.MINOR_PERFORMANCE
    return _CATEGORY_OF_KIND[alert.kind]


class Step(StrEnum):
    """The runbook's incident response, in order."""

    ACKNOWLEDGE = "acknowledge"
    ASSESS = "assess"
    COMMUNICATE = "communicate"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    REVIEW = "review"


STEP_GUIDANCE = {
    Step.ACKNOWLEDGE: "Acknowledge within the response time (`runbook incident ack ID`).",
    Step.ASSESS: "Assess impact: which users, since when, how bad (Prefect run, Grafana).",
    Step.COMMUNICATE: "Tell stakeholders in #devops-alerts; status updates until resolved.",
    Step.MITIGATE: "Mitigate first: roll back, isolate, scale; root cause later.",
    Step.RESOLVE: "Fix the cause; a good release resolves it (`runbook incident resolve ID`).",
    Step.REVIEW: "Post-incident review: timeline, cause, actions (a Prefect artifact).",
}


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class StepRecord(BaseModel):
    step: Step
    guidance: str
    done_at: datetime | None = None
    note: str = ""


class Incident(BaseModel):
    """One incident: what, how urgent, by when, and how far the response got."""

    id: str
    priority: Priority
    category: Category
    status: IncidentStatus = IncidentStatus.OPEN
    service: str
    environment: str
    title: str
    details: str = ""
    link: str | None = None
    dedup_key: str
    opened_at: datetime
    respond_by: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    steps: list[StepRecord]
    timeline: list[str] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    def overdue(self, now: datetime) -> bool:
        """Nobody acknowledged it before its response deadline."""
        return self.acknowledged_at is None and self.is_open and now > self.respond_by


def open_incident(alert: Alert, now: datetime, times: ResponseTimes | None = None) -> Incident:
    """A new incident for a triggered alert, with its deadline and the runbook's steps."""
    category = category_of(alert)
    priority = classify(category, alert.environment)
    respond_by = now + (times or ResponseTimes()).deadline(priority)
    return Incident(
        id=f"INC-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}", priority=priority,
        category=category, service=alert.service, environment=alert.environment,
        title=alert.summary, details=alert.details, link=alert.link, dedup_key=alert.dedup_key,
        opened_at=now, respond_by=respond_by,
        steps=[StepRecord(step=step, guidance=STEP_GUIDANCE[step]) for step in Step],
        timeline=[f"{now:%Y-%m-%d %H:%M:%S} opened {priority.value}: {alert.summary}"],
    )


def complete_step(incident: Incident, step: Step, now: datetime, note: str = "") -> Incident:
    """The incident with one response step marked done (idempotent: first time wins)."""
    steps = [
        record.model_copy(update={"done_at": now, "note": note})
        if record.step is step and record.done_at is None else record
        for record in incident.steps
    ]
    line = f"{now:%Y-%m-%d %H:%M:%S} {step.value}" + (f": {note}" if note else "")
    return incident.model_copy(update={"steps": steps, "timeline": [*incident.timeline, line]})


def acknowledge(incident: Incident, now: datetime, by: str) -> Incident:
    """Someone took it; the response clock stops."""
    if not incident.is_open:
        raise ConfigurationError(f"{incident.id} is resolved already")
    updated = complete_step(incident, Step.ACKNOWLEDGE, now, f"by {by}")
    return updated.model_copy(update={
        "status": IncidentStatus.ACKNOWLEDGED,
        "acknowledged_at": incident.acknowledged_at or now,
        "acknowledged_by": incident.acknowledged_by or by,
    })


def resolve(incident: Incident, now: datetime, note: str) -> Incident:
    """The problem is over; the review is what is left."""
    updated = complete_step(incident, Step.RESOLVE, now, note)
    return updated.model_copy(update={"status": IncidentStatus.RESOLVED, "resolved_at": now})


def review_markdown(incident: Incident) -> str:
    """The post-incident review skeleton, filled with what the record knows."""
    def stamp(value: datetime | None) -> str:
        return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "—"

    response = "—"
    if incident.acknowledged_at:
        minutes = (incident.acknowledged_at - incident.opened_at).total_seconds() / 60
        met = "met" if incident.acknowledged_at <= incident.respond_by else "MISSED"
        response = f"{minutes:.1f} min ({met}; deadline {stamp(incident.respond_by)})"
    duration = "—"
    if incident.resolved_at:
        duration = f"{(incident.resolved_at - incident.opened_at).total_seconds() / 60:.1f} min"
    steps = "\n".join(
        f"| {r.step.value} | {stamp(r.done_at)} | {r.note or r.guidance} |" for r in incident.steps
    )
    timeline = "\n".join(f"- {line}" for line in incident.timeline)
    link = f"\n[Prefect run]({incident.link})\n" if incident.link else ""
    return (
        f"# Post-incident review: {incident.id} ({incident.priority.value})\n\n"
        f"**{incident.title}** — {incident.service}/{incident.environment}, "
        f"{incident.category.value.replace('_', ' ')}\n{link}\n"
        f"| opened | acknowledged | resolved | time to respond | duration |\n"
        f"|---|---|---|---|---|\n"
        f"| {stamp(incident.opened_at)} | {stamp(incident.acknowledged_at)} "
        f"| {stamp(incident.resolved_at)} | {response} | {duration} |\n\n"
        f"## Response steps\n\n| step | done | note |\n|---|---|---|\n{steps}\n\n"
        f"## Timeline\n\n{timeline}\n\n"
        "## Cause\n\n_To be written by the responders._\n\n"
        "## Actions\n\n_What changes so this does not happen again, with owners._\n"
    )


class OpenIncident(BaseModel):
    """Index entry: the open incident of one dedup key."""

    id: str


class IncidentStore:
    """Incidents in the state store (kind ``incident``, by id) with an index of the open
    one per dedup key (``incident-open``). Every change of a stored incident is a
    read-modify-write under its row lock (:meth:`change`), so an acknowledge and a resolve
    arriving together both land."""

    def __init__(self, state: StateStore | Path, tx: Transaction | None = None) -> None:
        self.store = as_store(state)
        self._records = Collection(self.store, INCIDENT, Incident, tx)
        self._open = Collection(self.store, INCIDENT_OPEN, OpenIncident, tx)
        self._tx = tx

    def within(self, tx: Transaction) -> IncidentStore:
        """The same store, reading and writing inside ``tx``."""
        return IncidentStore(self.store, tx)

    def save(self, incident: Incident) -> None:
        with self._bound() as bound:
            bound._records.put(incident.id, incident)
            bound._index(incident)

    def get(self, incident_id: str) -> Incident:
        found = self._records.get(_checked_id(incident_id))
        if found is None:
            raise ConfigurationError(f"no incident {incident_id!r}")
        return found

    def change(self, incident_id: str, change: Callable[[Incident], Incident]
               ) -> tuple[Incident, Incident]:
        """Apply ``change`` to the stored incident under its row lock; (before, after).

        Raises:
            ConfigurationError: no such incident, or whatever ``change`` raises (nothing
                is written then).
        """
        with self._bound() as bound:
            found = bound._records.get(_checked_id(incident_id))
            if found is None:
                raise ConfigurationError(f"no incident {incident_id!r}")
            # Locks in the order publishing takes them (index, then record): no deadlock.
            bound._open.get(found.dedup_key, lock=True)
            return bound._change_locked(incident_id, change)

    def _change_locked(self, incident_id: str, change: Callable[[Incident], Incident]
                       ) -> tuple[Incident, Incident]:
        with self._records.update(incident_id) as held:
            if held.value is None:
                raise ConfigurationError(f"no incident {incident_id!r}")
            before = held.value
            held.value = change(before)
            self._index(held.value)
            return before, held.value

    def all(self) -> list[Incident]:
        return sorted(self._records.values(), key=lambda incident: incident.opened_at)

    def open_for(self, dedup_key: str, *, lock: bool = False) -> Incident | None:
        """The open incident an alert with this key belongs to, if any. ``lock`` (inside
        :meth:`within`): hold its row lock, to change it in the same transaction."""
        entry = self._open.get(dedup_key, lock=lock)
        found = self._records.get(entry.id, lock=lock) if entry else None
        return found if found is not None and found.is_open else None

    def _index(self, incident: Incident) -> None:
        if incident.is_open:
            entry = self._open.get(incident.dedup_key)
            if entry is None or entry.id != incident.id:
                self._open.put(incident.dedup_key, OpenIncident(id=incident.id))
            return
        entry = self._open.get(incident.dedup_key, lock=True)
        if entry is not None and entry.id == incident.id:
            self._open.delete(incident.dedup_key)

    @contextmanager
    def _bound(self) -> Iterator[IncidentStore]:
        """This store inside a transaction: the caller's, or one of its own."""
        if self._tx is not None:
            yield self
        else:
            with self.store.transaction() as tx:
                yield self.within(tx)


def _checked_id(incident_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]{1,80}", incident_id):
        raise ConfigurationError(f"not an incident id: {incident_id!r}")
    return incident_id


def now_utc() -> datetime:
    return datetime.now(UTC)
