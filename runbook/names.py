"""The names layers share: pipeline stages, release gates, Prefect task tags. Pure.

Values are the strings reports, run metrics, alerts and dashboards have always shown, so a
``Stage`` or ``GateName`` is interchangeable with its string (``StrEnum``) and nothing
persisted or pushed changes.

A *deploy* (runbook/ops/deploys.py) is the part of a run in ``DEPLOY_STAGES``: from the
candidate's first contact with the target to the end of verification, whatever the
strategy. ``perf`` belongs to it: it runs on the preview slot, between the candidate
starting and traffic moving, so the runbook's deploy duration target (< 5 min) includes the
load test, as DORA's lead time does. ``approval`` does not: a person deciding is waiting,
not deploying. A stage of a deploy that breaks is a deployment failure when it acts on the
target (``TARGET_STAGES``); ``perf`` acts on the load generator, so its breaking is the
pipeline's own failure (a degraded candidate is a failed perf *gate*, not a broken stage).
"""

from __future__ import annotations

from enum import StrEnum

from runbook.alerts.models import AlertKind


class Stage(StrEnum):
    """Every stage a run report can hold, in pipeline order."""

    RECOVER = "recover"  # an interrupted release of a dead run, rolled back or kept
    BUILD = "build"
    TEST = "test"
    SCAN = "scan"
    PREVIEW = "preview"  # blue-green: the candidate in the idle color
    PERF = "perf"  # blue-green: load on the preview slot only
    APPROVAL = "approval"  # a person (or the deadline) decides: promote, or keep an
    # inconclusive verification
    PROMOTE = "promote"  # blue-green: the atomic traffic switch
    ROLLOUT = "rollout"  # rolling: the release replaces the live revision in place
    VERIFY = "verify"
    RETIRE = "retire"  # rolling: the replaced revision removed
    ROLLBACK = "rollback"
    GUARD = "guard"  # the released revision watched after the run
    TIDY = "tidy"  # the guard's end: the standby scaled down


DEPLOY_STAGES: tuple[Stage, ...] = (
    Stage.PREVIEW, Stage.PERF, Stage.PROMOTE, Stage.ROLLOUT, Stage.VERIFY, Stage.RETIRE,
    Stage.ROLLBACK,
)
"""The deploy: its duration (daily health, DORA, run metrics) is these stages' sum, and a run
with none of them never deployed (see the module docstring for ``perf`` and ``approval``)."""

NOT_DEPLOYING: frozenset[Stage] = frozenset({Stage.APPROVAL, Stage.GUARD})
"""Stages a strategy's run goes through that are no deploy time: a person deciding, and
starting the guard of a release already verified."""

TARGET_STAGES: frozenset[Stage] = frozenset(DEPLOY_STAGES) - {Stage.PERF}
"""Deploy stages acting on the target: one of them failing is a deployment failure."""


class GateName(StrEnum):
    """Every gate with a fixed name. Two families are named per measurement:
    ``perf_baseline_<metric>_ratio`` (one per compared latency) and ``verify_<check>`` (one
    per verification check, declared checks included); their creators pass the alert kind."""

    TESTS = "tests"
    SCAN_SEVERITY = "scan_severity"
    SCAN_SECRETS = "scan_secrets"
    DOCKERFILE_LINT = "dockerfile_lint"
    CODE_LINT = "code_lint"
    SCANNERS_AVAILABLE = "scanners_available"
    COVERAGE_PCT = "coverage_pct"
    SUPPRESSIONS_EXPIRED = "suppressions_expired"
    SBOM = "sbom"
    CANDIDATE_HEALTH = "candidate_health"
    PERF_AVG_LATENCY_S = "perf_avg_latency_s"
    PERF_ERROR_RATE = "perf_error_rate"
    PERF_RPS = "perf_rps"
    PERF_CPU_PCT = "perf_cpu_pct"
    PERF_MEMORY_PCT = "perf_memory_pct"
    PERF_BASELINE = "perf_baseline"

    @property
    def alert_kind(self) -> AlertKind:
        """The alert a run blocked by this gate raises."""
        return GATE_ALERT_KINDS[self]


GATE_ALERT_KINDS: dict[GateName, AlertKind] = {
    GateName.TESTS: AlertKind.TEST_FAILURE,
    GateName.SCAN_SEVERITY: AlertKind.VULNERABILITY,
    GateName.SCAN_SECRETS: AlertKind.VULNERABILITY,
    # A lint finding or a missing scanner is no vulnerability found: the pipeline's gate.
    GateName.DOCKERFILE_LINT: AlertKind.PIPELINE_FAILURE,
    GateName.CODE_LINT: AlertKind.PIPELINE_FAILURE,
    GateName.SCANNERS_AVAILABLE: AlertKind.PIPELINE_FAILURE,
    GateName.COVERAGE_PCT: AlertKind.COVERAGE_BELOW_THRESHOLD,
    # Informational: they never fail (a warning at most).
    GateName.SUPPRESSIONS_EXPIRED: AlertKind.PIPELINE_FAILURE,
    GateName.SBOM: AlertKind.PIPELINE_FAILURE,
    GateName.CANDIDATE_HEALTH: AlertKind.DEPLOYMENT_FAILURE,
    GateName.PERF_AVG_LATENCY_S: AlertKind.PERFORMANCE_DEGRADATION,
    GateName.PERF_ERROR_RATE: AlertKind.PERFORMANCE_DEGRADATION,
    GateName.PERF_RPS: AlertKind.PERFORMANCE_DEGRADATION,
    GateName.PERF_CPU_PCT: AlertKind.PERFORMANCE_DEGRADATION,
    GateName.PERF_MEMORY_PCT: AlertKind.PERFORMANCE_DEGRADATION,
    GateName.PERF_BASELINE: AlertKind.PERFORMANCE_DEGRADATION,
}

BASELINE_RATIO_ALERT = AlertKind.PERFORMANCE_DEGRADATION
"""``perf_baseline_<metric>_ratio``: slower than the released baseline."""
VERIFY_CHECK_ALERT = AlertKind.DEPLOYMENT_FAILURE
"""``verify_<check>``: the released revision failed a check on live traffic."""


def baseline_ratio_gate(metric: str) -> str:
    """The gate comparing one latency metric (``p95_latency_s``) with the baseline's."""
    return f"perf_baseline_{metric.removesuffix('_latency_s')}_ratio"


def verify_gate(check: str) -> str:
    """The gate of one verification check (``error-rate`` -> ``verify_error_rate``)."""
    return "verify_" + check.replace("-", "_")


BUILD_TAG = "runbook:build"
"""Prefect tag of the task runs daily health counts as builds."""
DEPLOY_TAG = "runbook:deploy"
"""Prefect tag of every task that changes what a target runs (candidate, switch, rollout,
undo, retire): filter on it in the UI to see every deploy action, whatever the strategy.
Deploys themselves are counted per run from the report (runbook/ops/deploys.py), so a
blue-green release (candidate + switch) is one deploy, not two."""
