"""The runbook's emergency procedures.

``production_outage``: page first (P1 incident, PagerDuty and Slack), then switch traffic
back to the last known good revision (the target's standby), record the mitigation.
``security_incident``: notify first (P1 incident, the security team), then isolate the
service (zero traffic, what ran is kept for forensics); secret rotation is left to people
and the result says so.

The page goes out before the automatic step is tried, so a router, engine or state read
that fails never costs it; a failed automatic step is its own alert (it is a second
problem: the mitigation did not happen), then the flow ends Failed with the reason.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from runbook.alerts.models import Alert
from runbook.emergency import (
    ROTATION_PENDING,
    EmergencyResult,
    EmergencyStatus,
    Procedure,
    isolation_failed_alert,
    outage_alert,
    outage_rollback_failed_alert,
    security_alert,
)
from runbook.incidents import Step
from runbook.models import Environment, ServiceName, Slot, TargetKind
from runbook.settings import StackSettings
from tasks.deploy import isolate_service, read_live_slot, read_standby_slot, switch_traffic
from tasks.emergency import publish_emergency_result
from tasks.notify import NotifyResult, publish_alert, record_incident_step


@flow(name="production-outage")
def production_outage(
    service: ServiceName,
    reason: str = "production is down",
    environment: Environment = Environment.PRODUCTION,
    target: TargetKind = TargetKind.DOCKER,
) -> EmergencyResult | State[EmergencyResult]:
    """Page now, then roll back to the standby revision.

    Args:
        service: The service's name.
        reason: What is wrong, in the caller's words (goes into the page).
        environment: Where (production unless said otherwise).
        target: The deploy target.
    """
    settings = StackSettings()
    env = Environment(environment).value
    link = flow_run.get_flow_run_ui_url()
    notified = publish_alert(outage_alert(service, env, reason, link), return_state=True)
    result = EmergencyResult(procedure=Procedure.PRODUCTION_OUTAGE, service=service,
                             environment=env, reason=reason,
                             status=EmergencyStatus.NOT_MITIGATED, flow_run_url=link)
    problem, serving = _roll_back_to_standby(service, env, TargetKind(target), settings,
                                             result)
    result.serving_after = serving
    if problem is None:
        result.status = EmergencyStatus.MITIGATED
        result.actions.append(f"traffic switched from {result.serving_before} to "
                              f"{result.serving_after} (the kept standby)")
        return _conclude(result, notified, mitigation=result.actions[0], problem=None)
    result.pending.append(f"{problem}: restore service by hand (redeploy a known good "
                          "revision with `runbook pipeline`)")
    return _conclude(result, notified, mitigation=None, problem=problem,
                     second=outage_rollback_failed_alert(service, env, problem, serving, link))


def _roll_back_to_standby(service: str, env: str, target: TargetKind,
                          settings: StackSettings,
                          result: EmergencyResult) -> tuple[str | None, str | None]:
    """The automatic step; returns (the problem, or None) and the revision serving after."""
    read = read_live_slot(target, service, env, settings, return_state=True)
    if not read.is_completed():
        return f"reading what is live failed: {read.message}", None
    live = read.result()[0]
    result.serving_before = live.revision if live else None
    kept = read_standby_slot(target, service, env, settings, return_state=True)
    if not kept.is_completed():
        return f"reading the kept revision failed: {kept.message}", result.serving_before
    standby: Slot | None = kept.result()
    if standby is None:
        return (f"{service}/{env} keeps no previous revision to roll back to",
                result.serving_before)
    switched = switch_traffic(target, standby, settings, return_state=True)
    if not switched.is_completed():
        return f"switch to {standby.revision} failed: {switched.message}", result.serving_before
    return None, standby.revision


@flow(name="security-incident")
def security_incident(
    service: ServiceName,
    reason: str = "security incident",
    environment: Environment = Environment.PRODUCTION,
    target: TargetKind = TargetKind.DOCKER,
) -> EmergencyResult | State[EmergencyResult]:
    """Notify security now, then isolate the service (zero traffic).

    Args:
        service: The service's name.
        reason: What happened, in the caller's words.
        environment: Where (production unless said otherwise).
        target: The deploy target.
    """
    settings = StackSettings()
    env = Environment(environment).value
    link = flow_run.get_flow_run_ui_url()
    notified = publish_alert(security_alert(service, env, reason, link), return_state=True)
    isolated_state = isolate_service(TargetKind(target), service, env, settings,
                                     return_state=True)
    problem = None
    isolated: list[Slot] = []
    if not isolated_state.is_completed():
        problem = f"isolation failed: {isolated_state.message}"
    else:
        isolated = isolated_state.result()
    result = EmergencyResult(
        procedure=Procedure.SECURITY_INCIDENT, service=service, environment=env, reason=reason,
        status=EmergencyStatus.NOT_MITIGATED if problem else EmergencyStatus.MITIGATED,
        serving_before=", ".join(slot.revision for slot in isolated) or None,
        serving_after=None, flow_run_url=link,
        pending=[ROTATION_PENDING,
                 "investigate the kept containers / Deployments, then bring the service back "
                 f"(`runbook rollback {service} --env {env}` or a new release)"],
    )
    if problem is None:
        result.actions.append("service isolated: zero traffic; what ran is kept for forensics")
        return _conclude(result, notified, mitigation=result.actions[0], problem=None)
    result.pending.insert(0, f"{problem}: isolate by hand")
    return _conclude(result, notified, mitigation=None, problem=problem,
                     second=isolation_failed_alert(service, env, problem, link))


def _conclude(result: EmergencyResult, notified: State[NotifyResult], mitigation: str | None,
              problem: str | None,
              second: Alert | None = None) -> EmergencyResult | State[EmergencyResult]:
    """Record the mitigation on the page's incident, alert a failed automatic step, then
    publish the result."""
    pages = [notified]
    if second is not None:
        pages.append(publish_alert(second, return_state=True))
    for state in pages:
        if state.is_completed():
            sent: NotifyResult = state.result()
            result.alerts_delivered += sent.delivered
            result.alerts_waiting = sent.waiting
        else:
            result.pending.append(f"alert not recorded ({state.message}): call the on-call")
    first = notified.result() if notified.is_completed() else None
    if first is not None and first.incidents:
        incident = record_incident_step(first.incidents[0], Step.MITIGATE,
                                        mitigation or f"automatic mitigation failed: {problem}")
        result.incident_id, result.priority = incident.id, incident.priority.value
        result.actions.append(f"incident {incident.id} ({incident.priority.value}) opened; "
                              "page sent before the automatic step")
    publish_emergency_result(result)
    get_run_logger().warning("%s %s/%s: %s", result.procedure.value, result.service,
                             result.environment, result.status.value)
    if problem is not None:
        # A Failed final state, not a traceback: the result (and its artifact) say why.
        return Failed(message=problem, data=result)
    return result
