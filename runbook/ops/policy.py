"""Thresholds of the scheduled operations, with the runbook's defaults.

Flows take an ``OpsPolicy`` as a parameter, so a deployment (or a run by hand) overrides any
field without code changes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HealthTargets(BaseModel):
    """Runbook "Pipeline health targets"."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    build_success_min: float = Field(default=0.95, ge=0, le=1)
    """Build success rate must exceed this (runbook: > 95 %)."""
    deploy_success_min: float = Field(default=0.98, ge=0, le=1)
    """Deploy success rate must exceed this (runbook: > 98 %)."""
    build_avg_max_s: float = Field(default=600.0, gt=0)
    """Average build duration must stay below this (runbook: < 10 min)."""
    deploy_avg_max_s: float = Field(default=300.0, gt=0)
    """Average deploy duration must stay below this (runbook: < 5 min)."""
    windows_days: list[int] = Field(default_factory=lambda: [1, 7])
    """Windows, in days back from now, every rate and average is computed over."""
    dora_days: int = Field(default=30, ge=1)
    """Window of the DORA keys, in days back from now."""
    trend_days: int = Field(default=7, ge=1)
    """Days the report's trend chart shows, one point per day."""
    app_window_s: int = Field(default=86400, gt=0)
    """Window of the application metrics per route (runbook: over the day)."""


class ScanSla(BaseModel):
    """How long a finding may stay open, by severity (runbook: critical 7 d, high 30 d)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    critical_days: int = Field(default=7, ge=0)
    """Days a critical finding may stay open."""
    high_days: int = Field(default=30, ge=0)
    """Days a high finding may stay open."""
    medium_days: int | None = Field(default=None, ge=0)
    """None: no SLA (reported, never a breach)."""
    low_days: int | None = Field(default=None, ge=0)
    """Days a low finding may stay open; None: no SLA."""
    suppression_warning_days: int = Field(default=14, ge=0)
    """A suppression expiring within this many days is listed as about to expire."""
    week_days: int = Field(default=7, gt=0)
    """Scans newer than this are "this week"; the latest older one is "last week"."""


class CleanupSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    keep_last: int = Field(default=5, ge=1)
    """Newest tags kept per repository, on top of every deployed or standby revision."""


class RotationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    grace_s: float = Field(default=300.0, ge=0)
    """Time both values stay valid after the new one is verified, so clients holding the
    old value (caches, in-flight jobs) move over before it is revoked."""
    wait_grace: bool = True
    """The run waits out the grace period and revokes; off, a later run revokes (with a
    monthly schedule that is a month of two valid values)."""


class ReviewSettings(BaseModel):
    """Runbook "quarterly runbook review"."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    paths: list[str] = Field(
        default_factory=lambda: ["deployments/", "runbook/policy.py", "prefect.yaml"])
    """What the review covers: the wiring, the thresholds and the schedules."""
    git_timeout_s: float = Field(default=30.0, gt=0)
    """Deadline of one ``git`` call."""


class OpsPolicy(BaseModel):
    """Everything the scheduled flows decide with."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    health: HealthTargets = Field(default_factory=HealthTargets)
    """Daily health: success and duration targets, DORA and trend windows."""
    scan: ScanSla = Field(default_factory=ScanSla)
    """Weekly scan review: how long findings may stay open."""
    cleanup: CleanupSettings = Field(default_factory=CleanupSettings)
    """Registry cleanup: how many tags are kept."""
    rotation: RotationSettings = Field(default_factory=RotationSettings)
    """Secret rotation: the grace period of the old value."""
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    """Quarterly runbook review: what it covers."""
