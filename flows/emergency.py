"""The runbook's emergency procedures.

``production_outage``: switch traffic back to the last known good revision (the target's
standby) at once, open a P1 incident, page and post to Slack, record the status.
``security_incident``: isolate the service (zero traffic, what ran is kept for forensics),
open a P1 incident, notify the security team; secret rotation is left to people until the
rotation flow exists (issue 7) and the result says so.

Both page even when their automatic step fails, then end Failed with the reason.
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
    outage_alert,
    security_alert,
)
from runbook.incidents import Step
from runbook.models import Environment, Slot, TargetKind
from runbook.settings import StackSettings
from tasks.deploy import isolate_service, read_live_slot, read_standby_slot, switch_traffic
from tasks.emergency import publish_emergency_result
from tasks.notify import publish_alert, record_incident_step


@flow(name="production-outage")
def production_outage(
    service: str,
    reason: str = "production is down",
    environment: Environment = Environment.PRODUCTION,
    target: TargetKind = TargetKind.DOCKER,
) -> EmergencyResult | State[EmergencyResult]:
    """Roll back to the standby revision now, then raise the P1 incident and page."""
    settings = StackSettings()
    env = Environment(environment).value
    live, _ = read_live_slot(target, service, env, settings)
    standby = read_standby_slot(target, service, env, settings)
    problem = None
    if standby is None:
        problem = f"{service}/{env} keeps no previous revision to roll back to"
    else:
        switched = switch_traffic(target, standby, settings, return_state=True)
        if switched.is_failed():
            problem = f"switch to {standby.revision} failed: {switched.message}"
    result = EmergencyResult(
        procedure=Procedure.PRODUCTION_OUTAGE, service=service, environment=env, reason=reason,
        status=EmergencyStatus.NOT_MITIGATED if problem else EmergencyStatus.MITIGATED,
        serving_before=live.revision if live else None,
        serving_after=standby.revision if standby and not problem else
        (live.revision if live else None),
        flow_run_url=flow_run.get_flow_run_ui_url(),
    )
    if problem is None:
        result.actions.append(f"traffic switched from {result.serving_before} to "
                              f"{result.serving_after} (the kept standby)")
    else:
        result.pending.append(f"{problem}: restore service by hand (redeploy a known good "
                              "revision with `runbook pipeline`)")
    alert = outage_alert(service, env, reason, result.serving_after, problem,
                         result.flow_run_url)
    return _raise_incident(result, alert, mitigation=result.actions[0] if not problem else None,
                           problem=problem)


@flow(name="security-incident")
def security_incident(
    service: str,
    reason: str = "security incident",
    environment: Environment = Environment.PRODUCTION,
    target: TargetKind = TargetKind.DOCKER,
) -> EmergencyResult | State[EmergencyResult]:
    """Isolate the service (zero traffic), raise the P1 incident, notify security."""
    settings = StackSettings()
    env = Environment(environment).value
    isolated_state = isolate_service(target, service, env, settings, return_state=True)
    problem = None
    isolated: list[Slot] = []
    if isolated_state.is_failed():
        problem = f"isolation failed: {isolated_state.message}"
    else:
        isolated = isolated_state.result()
    result = EmergencyResult(
        procedure=Procedure.SECURITY_INCIDENT, service=service, environment=env, reason=reason,
        status=EmergencyStatus.NOT_MITIGATED if problem else EmergencyStatus.MITIGATED,
        serving_before=", ".join(slot.revision for slot in isolated) or None,
        serving_after=None, flow_run_url=flow_run.get_flow_run_ui_url(),
        pending=[ROTATION_PENDING,
                 "investigate the kept containers / Deployments, then bring the service back "
                 f"(`runbook rollback {service} --env {env}` or a new release)"],
    )
    if problem is None:
        result.actions.append("service isolated: zero traffic; what ran is kept for forensics")
    else:
        result.pending.insert(0, f"{problem}: isolate by hand")
    alert = security_alert(service, env, reason, isolated, problem, result.flow_run_url)
    return _raise_incident(result, alert, mitigation=result.actions[0] if not problem else None,
                           problem=problem)


def _raise_incident(result: EmergencyResult, alert: Alert, mitigation: str | None,
                    problem: str | None) -> EmergencyResult | State[EmergencyResult]:
    """Publish the P1 alert (its incident records the mitigation), then the result."""
    notified = publish_alert(alert)
    result.alerts_delivered, result.alerts_waiting = notified.delivered, notified.waiting
    if notified.incidents:
        incident_id = notified.incidents[0]
        note = mitigation or f"automatic mitigation failed: {problem}"
        incident = record_incident_step(incident_id, Step.MITIGATE, note)
        result.incident_id, result.priority = incident.id, incident.priority.value
        result.actions.append(f"incident {incident.id} ({incident.priority.value}) opened; "
                              f"{alert.kind.value} alert published")
    publish_emergency_result(result)
    get_run_logger().warning("%s %s/%s: %s", result.procedure.value, result.service,
                             result.environment, result.status.value)
    if problem is not None:
        # A Failed final state, not a traceback: the result (and its artifact) say why.
        return Failed(message=problem, data=result)
    return result
