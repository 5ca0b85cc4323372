"""The release policy: every threshold of the runbook, typed, with its default.

Defaults come from the runbook. A service overrides them in ``service.yaml`` under
``policy:`` (all environments) and ``environments.<env>:`` (one environment); the
environment wins over the service, the service over the defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runbook.checks.model import MetricCheck, StandardSource
from runbook.models import Severity


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

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
    perf_degradation_ratio: float = Field(default=1.5, gt=1)
    """Critical when p95 or average latency exceeds this multiple of the last released
    revision's (runbook: performance degraded > 50 %)."""
    perf_degradation_floor_s: float = Field(default=0.05, ge=0)
    """Latency increases smaller than this never count as degradation: a 2 ms to 4 ms p95 is
    noise on a shared machine, not a slower release."""


class PerfSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    users: int = Field(default=4, ge=1)
    """Concurrent simulated users (Locust) against the preview slot."""
    spawn_rate: float = Field(default=4.0, gt=0)
    """Users started per second until ``users`` run."""
    think_time_s: float = Field(default=0.05, ge=0)
    """Pause between one user's requests in the generated locustfile; 0 is a closed loop at
    full speed, which measures the service's saturation (and its CPU at 100 %), not its
    behaviour under a given load."""
    duration_s: float = Field(default=10.0, gt=0)
    """How long the load runs, ramp-up included."""
    request_timeout_s: float = Field(default=10.0, gt=0)
    """A request slower than this counts as failed."""
    required_rps: float | None = Field(default=None, gt=0)
    """Throughput the service must reach under this load; unset means no throughput gate."""
    locustfile: str | None = None
    """The service's own locustfile, relative to its directory; unset: one is generated
    from ``traffic.paths``."""
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    """Locust workers; > 0 runs Locust distributed (one master, this many worker processes)
    for load one process cannot make; ``auto``: one per core when the requested load
    (``required_rps``, or ``users / think_time_s`` of the generated locustfile) exceeds
    what one process makes, else none."""
    shutdown_grace_s: float = Field(default=30.0, gt=0)
    """Deadline beyond ``duration_s`` for Locust to stop and write its stats."""


class AnalysisSettings(BaseModel):
    """Post-promotion analysis, shaped like an Argo Rollouts metric check."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    window_s: float = Field(default=30.0, gt=0)
    """Total time the new revision is watched after traffic moves."""
    interval_s: float = Field(default=5.0, gt=0)
    """Time between measurements; each one queries Prometheus and checks health."""
    initial_delay_s: float = Field(default=6.0, ge=0)
    """Time before the first measurement (Argo's initialDelay): a revision that just got
    its router series needs a few scrapes before a rate exists; until then 'no data' would
    be an inconclusive measurement that ends the analysis."""
    series_timeout_s: float = Field(default=60.0, ge=0)
    """Longest wait, before the first measurement, for Prometheus to scrape the revision's
    request counter twice (a new route's or pod's target must be discovered first: ~8 s
    here, a minute or more with a 30 s scrape interval). The window starts when the series
    is there; past this wait it starts anyway, and missing data stays inconclusive. 0:
    never wait."""
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
    provider: StandardSource | None = None
    """Source of the standard checks' request metrics (router, app, istio, linkerd); unset:
    the target's own (router on docker, app on kubernetes)."""
    metrics: list[MetricCheck] = Field(default_factory=list)
    """The service's own checks (Argo Rollouts ``Metric`` shape), judged with the standard
    ones by one engine (``runbook/checks/``)."""
    guard_s: float = Field(default=600.0, ge=0)
    """After the window, the live revision stays under the same checks this long (the
    previous revision kept ready); a failure then rolls back. 0: no guard."""

    @field_validator("metrics")
    @classmethod
    def _unique_names(cls, metrics: list[MetricCheck]) -> list[MetricCheck]:
        names = [metric.name for metric in metrics]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"metric names must be unique, repeated: {duplicates}")
        return metrics


class DeploySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    health_timeout_s: float = Field(default=60.0, gt=0)
    """Deadline for a new revision's health check to pass before it is declared unhealthy."""
    health_request_timeout_s: float = Field(default=2.0, gt=0)
    """A health check slower than this fails."""
    lock_timeout_s: float = Field(default=1800.0, gt=0)
    """Deadline for waiting on another run deploying the same service to the same
    environment (one deploy at a time); past it the run fails instead of waiting forever."""
    require_approval: bool = False
    """A person approves promotion, and decides an inconclusive verification, in the Prefect
    UI. Off by default so runs stay unattended; turn it on for production in service.yaml
    (``environments.production.deploy.require_approval: true``)."""
    approval_timeout_s: int = Field(default=3600, gt=0)
    """How long a run waits for that decision; no answer means no (nothing is promoted)."""
    approval_poll_s: int = Field(default=10, gt=0)
    """How often a paused run checks whether it was resumed."""


class ScanSettings(BaseModel):
    """The scan stage's gates (runbook "Quality Gates": no critical vulnerabilities, no
    secrets in code, container scan passes, no high-severity lint errors)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    block_severities: list[Severity] = Field(default_factory=lambda: [Severity.CRITICAL])
    """Findings of these severities block in every environment (runbook: critical)."""
    production_block_severities: list[Severity] = Field(
        default_factory=lambda: [Severity.CRITICAL, Severity.HIGH]
    )
    """Findings of these severities block in production (runbook: high blocks production)."""
    secrets_block: bool = True
    """A secret in the code blocks in every environment, whatever its severity."""
    lint_block_severities: list[Severity] = Field(
        default_factory=lambda: [Severity.CRITICAL, Severity.HIGH]
    )
    """Lint findings (Dockerfile, Python, shell) that block everywhere (runbook: no
    high-severity lint errors)."""
    ruff_select: list[str] = Field(default_factory=lambda: ["E9", "F", "B"])
    """Ruff rules run on the service's Python code (``--select``): syntax errors, pyflakes,
    bugbear."""
    ruff_severities: dict[str, Severity] = Field(default_factory=lambda: {
        "E9": Severity.HIGH, "F63": Severity.HIGH, "F7": Severity.HIGH, "F82": Severity.HIGH,
        "F": Severity.MEDIUM, "B": Severity.MEDIUM,
    })
    """Ruff rates nothing: severity by rule-code prefix (longest wins; unmatched: low).
    High are the errors that break the program when it runs: syntax errors, undefined
    names, invalid comparisons, misplaced statements."""
    rule_severities: dict[str, Severity] = Field(default_factory=dict)
    """Per-rule severity of any scanner, keyed ``tool:RULE`` (``ruff:F401``,
    ``shellcheck:SC2086``, ``hadolint:DL3008``): a team's own rating wins over the tool's."""
    fail_closed_environments: list[str] = Field(default_factory=lambda: ["production"])
    """Where an unavailable scanner blocks; elsewhere it is a warning (runbook: production)."""
    unrated_vulnerability_severity: Severity = Severity.HIGH
    """Severity given to a vulnerability whose source rates none (pip-audit reports none):
    unknown is treated as serious, not as harmless."""
    osv_database_dir: str | None = None
    """An offline OSV database (directory of OSV JSON records) used when pip-audit's
    service is unreachable. Neither -> the dependency scanner is unavailable."""
    scanner_timeout_s: float = Field(default=300.0, gt=0)
    """Deadline for one scanner process; past it the scanner counts as unavailable."""
    trivy_cache_dir: str | None = None
    """Trivy's cache directory (``--cache-dir``): its layer cache and, under ``db/``, the
    vulnerability database. Offline, point it at the team's mirrored copy. Unset: Trivy's
    default (``~/.cache/trivy``)."""
    trivy_skip_db_update: bool = False
    """Use the database in ``trivy_cache_dir`` as it is (``--skip-db-update``): offline
    machines and a team-mirrored database. Without one, the vulnerability part is
    unavailable ("vulnerability database unavailable"), never "0 findings"."""
    trivy_image_sources: list[str] = Field(default_factory=lambda: ["docker", "remote"])
    """Where Trivy reads the image (``--image-src``, in order): the local engine that built
    it, then the registry it was pushed to."""


class Policy(BaseModel):
    """The effective policy for one service in one environment."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    thresholds: Thresholds = Field(default_factory=Thresholds)
    """The runbook's gate thresholds (coverage, vulnerabilities, error rate, latency)."""
    perf: PerfSettings = Field(default_factory=PerfSettings)
    """How the perf stage loads the candidate and what it compares."""
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    """Post-promotion verification: window, interval, failure limit, declared checks."""
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    """Deploy pacing: health timeouts, approval, the deploy lock."""
    scan: ScanSettings = Field(default_factory=ScanSettings)
    """The security scan: which scanners, how they read the image."""


class PolicyOverrides(BaseModel):
    """A partial policy as written in ``service.yaml``; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    thresholds: dict[str, Any] = Field(default_factory=dict)
    """Fields of ``Thresholds`` to change."""
    perf: dict[str, Any] = Field(default_factory=dict)
    """Fields of ``PerfSettings`` to change."""
    analysis: dict[str, Any] = Field(default_factory=dict)
    """Fields of ``AnalysisSettings`` to change."""
    deploy: dict[str, Any] = Field(default_factory=dict)
    """Fields of ``DeploySettings`` to change."""
    scan: dict[str, Any] = Field(default_factory=dict)
    """Fields of ``ScanSettings`` to change."""


def effective_policy(*layers: PolicyOverrides) -> Policy:
    """Defaults, then each layer of overrides in order (later layers win)."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.model_dump().items():
            merged.setdefault(section, {}).update(values)
    return Policy.model_validate(merged)
