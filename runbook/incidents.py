"""Incidents as the runbook defines them: priority, response deadline, the response steps.

Classification and every state change are pure functions over :class:`Incident`;
their store is :mod:`runbook.incident_store` (the state store's ``incident`` kind).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from runbook.alerts.models import Alert, AlertKind, Severity
from runbook.errors import ConfigurationError
from runbook.priority import Priority, ResponseTimes

PRODUCTION = "production"


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
    RUNBOOK_REVIEW = "runbook_review"
    """Not an outage: the quarterly runbook review, tracked like an incident (owner,
    steps, deadline) so it is done and not just reminded of."""


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
    AlertKind.RUNBOOK_REVIEW: Category.RUNBOOK_REVIEW,
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
    """One response step: when it was done, by whom, and what was done."""

    step: Step
    guidance: str
    done_at: datetime | None = None
    note: str = ""
    """What was done (the impact assessed, the message sent, the mitigation)."""
    by: str | None = None
    """Who did it (a person, or ``runbook`` for what a flow did)."""
    to: list[str] = Field(default_factory=list)
    """Communicate: who the message went to (channels, people)."""


class Escalation(BaseModel):
    """One escalation of an unacknowledged incident to the next contacts."""

    level: int
    """1: the secondary on-call; 2: the managers (0 is the primary, paged by the alert)."""
    at: datetime
    to: list[str]
    """The contacts paged or told, by name."""
    channels: list[str] = Field(default_factory=list)
    """The channels it was put out on (through the outbox, which delivers it)."""


class TimelineEntry(BaseModel):
    at: datetime
    source: str
    """``incident``, ``alert`` or ``run``: which record this line comes from."""
    text: str


class PostIncidentReview(BaseModel):
    """The review step's record: what happened when, why, and what changes."""

    incident_id: str
    generated_at: datetime
    by: str
    timeline: list[TimelineEntry]
    cause: str
    actions: list[str]
    time_to_acknowledge_min: float | None
    time_to_resolve_min: float | None


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
    impact: str | None = None
    """What the assess step found: which users, since when, how bad."""
    escalations: list[Escalation] = Field(default_factory=list)
    review: PostIncidentReview | None = None

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
    times = times or ResponseTimes()
    respond_by = now + (timedelta(days=times.review_days)
                        if category is Category.RUNBOOK_REVIEW else times.deadline(priority))
    return Incident(
        id=f"INC-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}", priority=priority,
        category=category, service=alert.service, environment=alert.environment,
        title=alert.summary, details=alert.details, link=alert.link, dedup_key=alert.dedup_key,
        opened_at=now, respond_by=respond_by,
        steps=[StepRecord(step=step, guidance=STEP_GUIDANCE[step]) for step in Step],
        timeline=[f"{now:%Y-%m-%d %H:%M:%S} opened {priority.value}: {alert.summary}"],
    )


def complete_step(incident: Incident, step: Step, now: datetime, note: str = "",
                  by: str | None = None, to: list[str] | None = None) -> Incident:
    """The incident with one response step marked done (first time wins for the step's
    record; every call is a timeline line, so repeated status updates are all kept)."""
    update = {"done_at": now, "note": note, "by": by, "to": list(to or [])}
    steps = [
        record.model_copy(update=update)
        if record.step is step and record.done_at is None else record
        for record in incident.steps
    ]
    who = f" by {by}" if by else ""
    audience = f" to {', '.join(to)}" if to else ""
    line = (f"{now:%Y-%m-%d %H:%M:%S} {step.value}{who}{audience}"
            + (f": {note}" if note else ""))
    return incident.model_copy(update={"steps": steps, "timeline": [*incident.timeline, line]})


def step_record(incident: Incident, step: Step) -> StepRecord:
    return next(record for record in incident.steps if record.step is step)


def _require_open(incident: Incident) -> None:
    if not incident.is_open:
        raise ConfigurationError(f"{incident.id} is resolved already")


def assess(incident: Incident, now: datetime, by: str, impact: str) -> Incident:
    """Step 2: the impact (which users, since when, how bad) is known."""
    _require_open(incident)
    updated = complete_step(incident, Step.ASSESS, now, impact, by)
    return updated.model_copy(update={"impact": impact})


def communicate(incident: Incident, now: datetime, by: str, message: str,
                to: list[str]) -> Incident:
    """Step 3: a message went to stakeholders (``to``: the channels and people)."""
    _require_open(incident)
    if not to:
        raise ConfigurationError("communicate: say to whom the message went")
    return complete_step(incident, Step.COMMUNICATE, now, message, by, to)


def mitigate(incident: Incident, now: datetime, by: str, action: str) -> Incident:
    """Step 4: what was done to stop the harm (roll back, isolate, scale)."""
    return complete_step(incident, Step.MITIGATE, now, action, by)


def record_escalation(incident: Incident, escalation: Escalation) -> Incident:
    """The incident with one more escalation level recorded."""
    line = (f"{escalation.at:%Y-%m-%d %H:%M:%S} escalated (level {escalation.level}) to "
            f"{', '.join(escalation.to)}"
            + (f" via {', '.join(escalation.channels)}" if escalation.channels else ""))
    return incident.model_copy(update={
        "escalations": [*incident.escalations, escalation],
        "timeline": [*incident.timeline, line]})


def post_incident_review(incident: Incident, now: datetime, by: str, cause: str,
                         actions: list[str], records: list[TimelineEntry]) -> Incident:
    """Step 6: the review record, with the timeline merged from the incident's own lines
    and the given alert and run records, in time order. Only once the incident is
    resolved: a review of an open incident would miss its end."""
    if incident.is_open:
        raise ConfigurationError(f"{incident.id} is not resolved: resolve it before the review")
    if not cause.strip():
        raise ConfigurationError("review: the cause must be stated")
    own = [TimelineEntry(at=_timeline_time(line, incident.opened_at), source="incident",
                         text=line[20:]) for line in incident.timeline]
    timeline = sorted([*own, *records], key=lambda entry: entry.at)
    record = PostIncidentReview(
        incident_id=incident.id, generated_at=now, by=by, timeline=timeline, cause=cause,
        actions=actions,
        time_to_acknowledge_min=_minutes(incident.opened_at, incident.acknowledged_at),
        time_to_resolve_min=_minutes(incident.opened_at, incident.resolved_at))
    summary = f"cause: {cause}; {len(actions)} action(s)"
    reviewed = complete_step(incident, Step.REVIEW, now, summary, by)
    return reviewed.model_copy(update={"review": record})


def _timeline_time(line: str, fallback: datetime) -> datetime:
    try:
        return datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return fallback


def _minutes(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds() / 60


def acknowledge(incident: Incident, now: datetime, by: str) -> Incident:
    """Someone took it; the response clock stops."""
    _require_open(incident)
    updated = complete_step(incident, Step.ACKNOWLEDGE, now, by=by)
    return updated.model_copy(update={
        "status": IncidentStatus.ACKNOWLEDGED,
        "acknowledged_at": incident.acknowledged_at or now,
        "acknowledged_by": incident.acknowledged_by or by,
    })


def resolve(incident: Incident, now: datetime, note: str, by: str | None = None) -> Incident:
    """The problem is over; the review is what is left."""
    updated = complete_step(incident, Step.RESOLVE, now, note, by)
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
        f"| {r.step.value} | {stamp(r.done_at)} | {r.by or '—'} | {', '.join(r.to) or '—'} "
        f"| {r.note or r.guidance} |" for r in incident.steps
    )
    review = incident.review
    if review is None:
        timeline = "\n".join(f"- {line}" for line in incident.timeline)
        cause = "_To be written by the responders._"
        actions = "_What changes so this does not happen again, with owners._"
    else:
        timeline = "\n".join(f"- {entry.at:%Y-%m-%d %H:%M:%S} [{entry.source}] {entry.text}"
                             for entry in review.timeline)
        cause = review.cause
        actions = "\n".join(f"1. {action}" for action in review.actions) or "_none_"
    escalations = "\n".join(
        f"| {e.level} | {stamp(e.at)} | {', '.join(e.to)} | {', '.join(e.channels) or '—'} |"
        for e in incident.escalations) or "| — | — | nobody | — |"
    link = f"\n[Prefect run]({incident.link})\n" if incident.link else ""
    return (
        f"# Post-incident review: {incident.id} ({incident.priority.value})\n\n"
        f"**{incident.title}** — {incident.service}/{incident.environment}, "
        f"{incident.category.value.replace('_', ' ')}\n{link}\n"
        f"| opened | acknowledged | resolved | time to respond | duration |\n"
        f"|---|---|---|---|---|\n"
        f"| {stamp(incident.opened_at)} | {stamp(incident.acknowledged_at)} "
        f"| {stamp(incident.resolved_at)} | {response} | {duration} |\n\n"
        f"Impact: {incident.impact or '_not assessed_'}\n\n"
        f"## Response steps\n\n| step | done | by | to | what |\n|---|---|---|---|---|\n"
        f"{steps}\n\n"
        f"## Escalations\n\n| level | at | to | via |\n|---|---|---|---|\n{escalations}\n\n"
        f"## Timeline\n\n{timeline}\n\n"
        f"## Cause\n\n{cause}\n\n"
        f"## Actions\n\n{actions}\n"
    )


def now_utc() -> datetime:
    return datetime.now(UTC)
