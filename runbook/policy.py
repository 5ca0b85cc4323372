"""The release policy: every threshold of the runbook, typed, with its default.

Defaults come from the runbook. A service overrides them in ``service.yaml`` under
``policy:`` (all environments) and ``environments.<env>:`` (one environment); the
environment wins over the service, the service over the defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gate_avg_latency_s: float = Field(default=2.0, gt=0)
    """Quality gate: average API response time under load must stay below this (runbook: 2 s)."""
    gate_error_rate: float = Field(default=0.01, ge=0, le=1)
    """Quality gate: error rate under load must stay below this (runbook: 1 %)."""
    rollback_error_rate: float = Field(default=0.05, ge=0, le=1)
    """Automatic rollback when the live error rate exceeds this (runbook: 5 %)."""
    rollback_avg_latency_s: float = Field(default=5.0, gt=0)
    """Automatic rollback when the live average response time exceeds this (runbook: 5 s)."""
    coverage_min_pct: float = Field(default=80.0, ge=0, le=100)
    """Quality gate: test coverage must exceed this (runbook: 80 %)."""
    cpu_max_pct: float = Field(default=70.0, gt=0)
    """Quality gate: CPU under load as a share of the allocation (runbook: 70 %)."""
    memory_max_pct: float = Field(default=80.0, gt=0)
    """Quality gate: memory under load as a share of the allocation (runbook: 80 %)."""


class PerfSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: int = Field(default=4, ge=1)
    """Concurrent clients against the preview slot."""
    duration_s: float = Field(default=10.0, gt=0)
    """How long the load runs. Short by default: the full perf stage is its own issue."""
    request_timeout_s: float = Field(default=10.0, gt=0)
    """A request slower than this counts as failed."""


class AnalysisSettings(BaseModel):
    """Post-promotion analysis, shaped like an Argo Rollouts metric check."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(default=30.0, gt=0)
    """Total time the new revision is watched after traffic moves."""
    interval_s: float = Field(default=5.0, gt=0)
    """Time between measurements; each one queries Prometheus and checks health."""
    failure_limit: int = Field(default=0, ge=0)
    """Failed measurements tolerated; one more fails the analysis (Argo default: 0)."""
    inconclusive_limit: int = Field(default=0, ge=0)
    """Measurements without enough data tolerated; missing data is never a pass."""
    consecutive_error_limit: int = Field(default=2, ge=0)
    """Consecutive measurement errors (Prometheus unreachable) tolerated."""
    min_requests: int = Field(default=5, ge=1)
    """Fewer requests than this in a measurement's range is 'no data', not a pass."""
    traffic_rps: float = Field(default=10.0, ge=0)
    """Verification traffic driven at the endpoint, so a quiet service still gets measured."""


class DeploySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    health_timeout_s: float = Field(default=60.0, gt=0)
    """Deadline for a new revision's health check to pass before it is declared unhealthy."""
    health_request_timeout_s: float = Field(default=2.0, gt=0)
    """A health check slower than this fails."""


class Policy(BaseModel):
    """The effective policy for one service in one environment."""

    model_config = ConfigDict(extra="forbid")

    thresholds: Thresholds = Field(default_factory=Thresholds)
    perf: PerfSettings = Field(default_factory=PerfSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)


class PolicyOverrides(BaseModel):
    """A partial policy as written in ``service.yaml``; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    thresholds: dict[str, Any] = Field(default_factory=dict)
    perf: dict[str, Any] = Field(default_factory=dict)
    analysis: dict[str, Any] = Field(default_factory=dict)
    deploy: dict[str, Any] = Field(default_factory=dict)


def effective_policy(*layers: PolicyOverrides) -> Policy:
    """Defaults, then each layer of overrides in order (later layers win)."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.model_dump().items():
            merged.setdefault(section, {}).update(values)
    return Policy.model_validate(merged)
