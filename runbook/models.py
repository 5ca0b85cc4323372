"""The typed records that pass between stages and end up in the run report."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Outcome(StrEnum):
    RELEASED = "released"  # live and verified
    ROLLED_BACK = "rolled_back"  # traffic moved, verification said no, switched back
    BLOCKED = "blocked"  # a gate said no before any production traffic moved
    FAILED = "failed"  # the pipeline itself broke (not a verdict on the release)


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
    passed: bool
    value: float | str | None
    threshold: float | str | None
    detail: str = ""


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


class Finding(BaseModel):
    tool: str
    rule_id: str
    severity: str  # critical | high | medium | low | info
    title: str
    location: str


class PerfReport(BaseModel):
    requests: int
    failures: int
    duration_s: float
    avg_latency_s: float | None
    p95_latency_s: float | None
    max_latency_s: float | None

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


class RunReport(BaseModel):
    """The contract of ``--report``: what happened to one release."""

    outcome: Outcome
    service: str
    environment: str
    strategy: str
    target: str
    image: str | None = None
    revision: str | None = None
    previous: str | None = None
    endpoint: str | None = None
    stages: list[StageRecord] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    reason: str = ""
    flow_run_url: str | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
