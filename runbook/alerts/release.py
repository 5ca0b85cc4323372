"""Pure decisions: which alert a pipeline run raises, and which open alerts it resolves."""

from __future__ import annotations

from pydantic import BaseModel

from runbook.alerts.models import Alert, AlertKind, Severity, make_alert
from runbook.models import Gate, Outcome, RunReport, StageStatus
from runbook.names import TARGET_STAGES

BLOCKED_KIND_PRIORITY = (
    AlertKind.VULNERABILITY, AlertKind.DEPLOYMENT_FAILURE, AlertKind.PERFORMANCE_DEGRADATION,
    AlertKind.COVERAGE_BELOW_THRESHOLD, AlertKind.TEST_FAILURE,
)
"""A run several gates blocked raises one alert: the first of these kinds a failed gate
carries (a vulnerability outranks a slow candidate), else a pipeline failure."""


class ReleasePlan(BaseModel):
    trigger: Alert | None = None
    """The one alert this run raises, if it went wrong."""
    resolve: list[Alert] = []
    """Open alerts of the service and environment this run ends (it was released)."""


def plan_release_alerts(report: RunReport, open_alerts: list[Alert]) -> ReleasePlan:
    """Released: resolve every open alert of the service and environment. Otherwise: one
    alert of the run's kind (deduplication against open alerts happens when publishing).

    Args:
        report: the final run report.
        open_alerts: alerts of the same service and environment not resolved yet.

    Returns:
        The alert to trigger and the alerts to resolve.
    """
    if report.outcome is Outcome.RELEASED:
        return ReleasePlan(resolve=[a.resolution(
            f"{a.kind.value.replace('_', ' ')} resolved: {report.service}/{report.environment}"
            f" released {report.revision}") for a in open_alerts])
    kind = alert_kind(report)
    summary = {
        AlertKind.ROLLBACK: f"release {report.image or '?'} rolled back to {report.revision}",
        AlertKind.ROLLBACK_FAILED: f"rollback FAILED: live now {report.revision or 'unknown'}"
                                   f" (release {report.image or '?'}): act now",
        AlertKind.PIPELINE_FAILURE: "pipeline failed",
        AlertKind.DEPLOYMENT_FAILURE: "deployment failed",
        AlertKind.VULNERABILITY: "critical vulnerability blocks the release",
        AlertKind.PERFORMANCE_DEGRADATION: "performance gate failed: release blocked",
        AlertKind.TEST_FAILURE: "tests failed: release blocked",
        AlertKind.COVERAGE_BELOW_THRESHOLD: "coverage below threshold: release blocked",
    }[kind]
    return ReleasePlan(trigger=make_alert(
        kind, report.service, report.environment, summary,
        details=report.reason, link=report.flow_run_url, cause=alert_cause(report),
    ))


def alert_cause(report: RunReport) -> str:
    """What went wrong, as part of the alert's identity: the failed stages (a broken build
    and a broken preview are two problems) or, for a blocked run, the failed gates."""
    if report.outcome is Outcome.BLOCKED:
        return "+".join(sorted(g.name for g in report.gates if not g.passed))
    return "+".join(s.name for s in report.stages if s.status is StageStatus.FAILED)


def alert_kind(report: RunReport) -> AlertKind:
    """The runbook's kind of a run that did not release."""
    if report.outcome is Outcome.ROLLBACK_FAILED:
        return AlertKind.ROLLBACK_FAILED
    if report.outcome is Outcome.ROLLED_BACK:
        return AlertKind.ROLLBACK
    if report.outcome is Outcome.FAILED:
        failed = {s.name for s in report.stages if s.status is StageStatus.FAILED}
        deploy = failed & TARGET_STAGES
        return AlertKind.DEPLOYMENT_FAILURE if deploy else AlertKind.PIPELINE_FAILURE
    return _blocked_kind([g for g in report.gates if not g.passed])


def _blocked_kind(failed: list[Gate]) -> AlertKind:
    kinds = {gate.alert_kind for gate in failed}
    return next((kind for kind in BLOCKED_KIND_PRIORITY if kind in kinds),
                AlertKind.PIPELINE_FAILURE)


INTERRUPTED_CAUSE = "interrupted-release"


def interrupted_release_alert(service: str, environment: str, candidate: str,
                              owner_run: str | None, serving: str | None, detail: str,
                              link: str | None) -> Alert:
    """A release a dead run had promoted but not verified was rolled back by a later run
    (or ``tidy``): its own problem (the release may have killed its run), its own key."""
    return make_alert(
        AlertKind.ROLLBACK, service, environment,
        f"release {candidate} left unverified by a dead run: rolled back, live now "
        f"{serving or 'nothing'}", details=f"owner run {owner_run}: {detail}", link=link,
        cause=INTERRUPTED_CAUSE)


def interrupted_recovery_failed_alert(service: str, environment: str, problem: str,
                                      live_now: str, link: str | None) -> Alert:
    """Rolling back an interrupted release failed: what is live is nobody's verified
    release. Critical, P1 in production."""
    return make_alert(
        AlertKind.ROLLBACK_FAILED, service, environment,
        f"rollback of an interrupted release FAILED: live now {live_now}: act now",
        details=problem, link=link, cause=INTERRUPTED_CAUSE)


def metrics_gap_alert(report: RunReport, problem: str) -> Alert:
    """The run's stage metrics did not reach the Pushgateway: the pipeline-health numbers
    have a gap. A warning about the pipeline itself (Slack, never a page); one while open."""
    return make_alert(
        AlertKind.PIPELINE_FAILURE, "runbook", "ops",
        f"run metrics of {report.service}/{report.environment} not pushed: pipeline health "
        "has a gap", details=problem, link=report.flow_run_url,
        severity=Severity.WARNING, cause="metrics-push")
