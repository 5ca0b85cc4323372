"""The typed records that pass between stages and end up in the run report."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    computed_field,
    field_validator,
    model_validator,
)

from runbook.alerts.models import AlertKind
from runbook.names import GateName

SERVICE_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
ServiceName = Annotated[str, StringConstraints(pattern=SERVICE_NAME_PATTERN)]
"""A service name as flows take it: DNS-safe. Prefect validates flow parameters on every
entry point (UI, API, CI, CLI) and shows the pattern in the run form, so a bad name never
reaches a target, a route or a file path."""


_GATE_NAMES = frozenset(GateName)


class Outcome(StrEnum):
    RELEASED = "released"  # live and verified
    ROLLED_BACK = "rolled_back"  # traffic moved, verification said no, switched back
    BLOCKED = "blocked"  # a gate said no before any production traffic moved
    FAILED = "failed"  # the pipeline itself broke (not a verdict on the release)
    ROLLBACK_FAILED = "rollback_failed"  # the switch back failed: see `revision` for what is live


class StageStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class Strategy(StrEnum):
    BLUE_GREEN = "blue-green"
    ROLLING = "rolling"


class TargetKind(StrEnum):
    DOCKER = "docker"
    KUBERNETES = "kubernetes"


class Environment(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


class Gate(BaseModel):
    """One quality gate: what was measured against what limit."""

    name: str
    """A ``GateName``, or one of its per-measurement families (runbook/names.py)."""
    passed: bool
    value: float | str | None
    threshold: float | str | None
    detail: str = ""
    warning: bool = False  # passed, but something deserves a look (e.g. a scanner unavailable)
    alert_kind: AlertKind = AlertKind.PIPELINE_FAILURE
    """The alert a run this gate blocked raises; a ``GateName``'s own unless given."""

    @model_validator(mode="before")
    @classmethod
    def _kind_of_name(cls, data: object) -> object:
        if (isinstance(data, dict) and "alert_kind" not in data
                and data.get("name") in _GATE_NAMES):
            return {**data, "alert_kind": GateName(data["name"]).alert_kind}
        return data


class StageRecord(BaseModel):
    name: str
    status: StageStatus
    started_at: datetime
    duration_s: float
    detail: str = ""


class ImageRef(BaseModel):
    """A built and pushed image: content tag and registry digest."""

    repository: str  # registry/name
    tag: str  # content tag: the revision
    digest: str  # sha256:...

    @property
    def by_digest(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def revision(self) -> str:
        return self.tag


class Slot(BaseModel):
    """A revision running in one color of an environment."""

    service: str
    environment: str
    color: str
    revision: str
    image: str
    address: str  # host:port where the target reaches it

    @property
    def server(self) -> str:
        """The name the router knows this slot by (also the Prometheus 'server' label)."""
        return f"{self.color}-{self.revision}"


class SuiteResult(BaseModel):
    exit_code: int
    duration_s: float
    output_tail: str
    coverage_xml: str | None = None
    """The Cobertura report copied out of the test container, when one was declared."""
    failed_tests: list[str] = Field(default_factory=list)
    """Names of the failed tests (JUnit report, else the runner's output)."""


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for critical up to 4 for info: lower is worse."""
        return list(Severity).index(self)


# Lint level names accepted where a severity is expected, so older callers keep working
# ("info" is a severity of its own, so it is not among them).
_LINT_LEVELS = {"error": "high", "warning": "medium", "style": "info"}


class Finding(BaseModel):
    """One problem a scanner reported, in one shape whatever the scanner."""

    tool: str
    rule_id: str
    severity: Severity
    title: str
    location: str  # file:line, or package@version
    fixed_version: str | None = None  # None: no fix published (or not applicable)
    fingerprint: str = ""  # stable across runs; derived from the fields above when empty

    @field_validator("severity", mode="before")
    @classmethod
    def _lint_levels(cls, value: object) -> object:
        if isinstance(value, str):
            lowered = value.lower()
            return _LINT_LEVELS.get(lowered, lowered)
        return value

    @model_validator(mode="after")
    def _fingerprinted(self) -> Finding:
        if not self.fingerprint:
            key = "\x1f".join((self.tool, self.rule_id, self.location))
            self.fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self


class EndpointStats(BaseModel):
    """Load-test results of one endpoint (method and path); latencies in seconds."""

    name: str  # e.g. "GET /api/answer"
    requests: int
    failures: int
    duration_s: float
    avg_latency_s: float | None = None
    p50_latency_s: float | None = None
    p90_latency_s: float | None = None
    p95_latency_s: float | None = None
    p99_latency_s: float | None = None
    max_latency_s: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


class ResourceUsage(BaseModel):
    """CPU and memory of the load-tested slot during the test, as % of its limit."""

    cpu_avg_pct: float | None = None  # sustained use over the test
    cpu_max_pct: float | None = None
    memory_max_pct: float | None = None  # peak: running out of memory is instantaneous
    samples: int = 0
    source: str = ""  # where the numbers come from, e.g. "docker stats API"
    detail: str = ""  # the limits used, or why nothing was measured


class PerfReport(EndpointStats):
    """Totals of a load test (the inherited fields), per endpoint and the slot's resources."""

    name: str = "total"
    endpoints: list[EndpointStats] = Field(default_factory=list)
    resources: ResourceUsage | None = None
    users: int | None = None
    tool: str = ""  # what generated the load, e.g. "locust 2.47.0, 2 workers"
    failure_samples: list[str] = Field(default_factory=list)
    timed_at_connection: int | None = None
    """Requests timed from the request's write to the response's last byte (as wrk and k6
    time them); the others carry Locust's time, which adds the client's own work. None
    for a report from before runbook timed at the connection."""


class Approval(BaseModel):
    """A decision a person (or the approval deadline) took while the run waited."""

    stage: str  # what was asked: "promote" or "verify" (an inconclusive verification)
    question: str
    approved: bool
    decided_by: str  # the name given in the form, or "timeout" when nobody answered
    reason: str
    decided_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class CheckMeasurement(BaseModel):
    """One measurement of one verification check, as the report records it."""

    check: str
    elapsed_s: float
    query: str
    value: float | int | str | None
    condition: str
    phase: str
    reason: str = ""
    measured_at: datetime | None = None
    """When it was measured (UTC); None in reports written before it was recorded."""


class RunReport(BaseModel):
    """The contract of ``--report``: what happened to one release."""

    outcome: Outcome
    service: str
    environment: str
    strategy: str
    target: str
    image: str | None = None
    revision: str | None = None
    """The revision live after the run (the previous one after a rollback)."""
    previous: str | None = None
    """The revision that was live before the run."""
    candidate: str | None = None
    """The revision this run delivered (built or given), whatever the outcome."""
    endpoint: str | None = None
    stages: list[StageRecord] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    reason: str = ""
    flow_run_url: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    measurements: list[CheckMeasurement] = Field(default_factory=list)
    """Every verification measurement: check, query, value, condition, phase."""
    guard_until: datetime | None = None
    """Until when the released revision stays under its checks (the guard), if guarded."""
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
