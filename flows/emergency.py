"""The runbook's emergency procedures.

``production_outage``: page first (P1 incident, PagerDuty and Slack), then switch traffic
back to the last known good revision (the target's standby), check its health for a short
window, record the mitigation.
``security_incident``: notify first (P1 incident, the security team), then isolate the
service (zero traffic), rotate every declared secret through the rotation flow (overlap,
restart, revoke: the service serves again only on fresh containers holding the new
values), tell the incident's channels what was done and open the post-incident review.

The page goes out before the automatic step is tried, so a router, engine or state read
that fails never costs it; a failed automatic step is its own alert (it is a second
problem: the mitigation did not happen), then the flow ends Failed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows.maintenance import secret_rotation
from runbook.alerts.models import Alert
from runbook.emergency import (
    ROTATION_PENDING,
    SECURITY_GRACE_S,
    EmergencyResult,
    EmergencyStatus,
    Procedure,
    isolation_failed_alert,
    outage_alert,
    outage_rollback_failed_alert,
    rotation_pending,
    security_alert,
)
from runbook.incidents import Step
from runbook.models import Environment, ServiceName, Slot, TargetKind
from runbook.ops.policy import OpsPolicy, RotationSettings
from runbook.rollback import rollback_check_window
from runbook.settings_root import RunbookSettings
from tasks.deploy import isolate_service, read_live_slot, read_standby_slot, switch_traffic
from tasks.emergency import publish_emergency_result
from tasks.incidents import communicate_incident, mitigate_incident
from tasks.notify import NotifyResult, publish_alert, publish_incident_review, record_incident_step
from tasks.rollback import deploy_settings, read_deployed_spec, verify_rollback


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
    settings = RunbookSettings.load()
    env = Environment(environment).value
    link = flow_run.get_flow_run_ui_url()
    notified = publish_alert(outage_alert(service, env, reason, link), settings,
                             return_state=True)
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
        _check_health(result, TargetKind(target), str(serving), settings)
        return _conclude(result, notified, settings, mitigation=result.actions[0], problem=None)
    result.pending.append(f"{problem}: restore service by hand (redeploy a known good "
                          "revision with `runbook pipeline`)")
    return _conclude(result, notified, settings, mitigation=None, problem=problem,
                     second=outage_rollback_failed_alert(service, env, problem, serving, link))


def _roll_back_to_standby(service: str, env: str, target: TargetKind,
                          settings: RunbookSettings,
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
    # The kept service.yaml's deploy settings when the target has it; nothing blocks the
    # switch on reading it (an outage is being mitigated).
    spec = read_deployed_spec(target, service, env, settings, return_state=True)
    deploy = deploy_settings(spec.result() if spec.is_completed() else None, env)
    switched = switch_traffic(target, standby, deploy, settings, return_state=True)
    if not switched.is_completed():
        return f"switch to {standby.revision} failed: {switched.message}", result.serving_before
    return None, standby.revision


@flow(name="security-incident")
def security_incident(
    service: ServiceName,
    reason: str = "security incident",
    environment: Environment = Environment.PRODUCTION,
    target: TargetKind = TargetKind.DOCKER,
    service_dir: str | None = None,
    grace_s: float = SECURITY_GRACE_S,
) -> EmergencyResult | State[EmergencyResult]:
    """Notify security now (their channel, email and page from runbook.yaml
    ``contacts``), isolate the service (zero traffic), rotate every declared secret through
    the rotation flow, tell the incident what was done, open the review.

    Args:
        service: The service's name.
        reason: What happened, in the caller's words.
        environment: Where (production unless said otherwise).
        target: The deploy target.
        service_dir: The service's directory: its ``service.yaml`` declares the secrets to
            rotate. None: nothing can be rotated and the result says so.
        grace_s: How long old and new values overlap before the old one is revoked.
    """
    settings = RunbookSettings.load()
    env = Environment(environment).value
    link = flow_run.get_flow_run_ui_url()
    rotation = "rotating every declared secret now" if service_dir else ROTATION_PENDING
    notified = publish_alert(security_alert(service, env, reason, link, rotation), settings,
                             return_state=True)
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
        pending=["review the access logs and the kept evidence, patch the cause, then "
                 f"release (`runbook pipeline`) or roll back (`runbook rollback {service} "
                 f"--env {env} --to REVISION`)"],
    )
    if problem is not None:
        result.pending.insert(0, f"{problem}: isolate by hand")
        return _conclude(result, notified, settings, mitigation=None, problem=problem,
                         second=isolation_failed_alert(service, env, problem, link))
    result.actions.append("service isolated: zero traffic")
    _rotate(result, service_dir, env, TargetKind(target), grace_s, settings)
    concluded = _conclude(result, notified, settings, mitigation="; ".join(result.actions),
                          problem=None, follow_up=_report_to_incident)
    if result.status is EmergencyStatus.NOT_MITIGATED:
        return Failed(message=result.pending[0], data=result)
    return concluded


def _rotate(result: EmergencyResult, service_dir: str | None, env: str, target: TargetKind,
            grace_s: float, settings: RunbookSettings) -> None:
    """Every declared secret through the rotation flow (generate, overlap, restart,
    verify, revoke), forced: a leaked value does not wait for its age."""
    if service_dir is None:
        result.pending.insert(0, ROTATION_PENDING)
        return
    policy = OpsPolicy(rotation=RotationSettings(grace_s=grace_s, wait_grace=True))
    state = secret_rotation(service_dir=service_dir, environment=env, policy=policy,
                            force=True, target=target.value, return_state=True)
    if not state.is_completed():
        result.status = EmergencyStatus.NOT_MITIGATED
        result.pending.insert(0, f"secret rotation failed ({state.message}): rotate by hand")
        return
    statuses = state.result()
    result.rotated = [s.name for s in statuses if not rotation_pending([s])]
    if result.rotated:
        result.actions.append(f"secrets rotated (old values revoked): {result.rotated}; the "
                              "service serves again on fresh containers with the new values")
        live = read_live_slot(target, result.service, env, settings)[0]
        result.serving_after = live.revision if live else None
    elif not statuses:
        result.actions.append("the service declares no secrets: nothing to rotate")
    result.pending[:0] = rotation_pending(statuses)


def _report_to_incident(result: EmergencyResult, settings: RunbookSettings) -> None:
    """Tell the incident's channels (the security team's) what was done; open the review."""
    assert result.incident_id is not None
    message = "; ".join(result.actions) + (
        f". Left to people: {'; '.join(result.pending)}" if result.pending else "")
    told = communicate_incident(result.incident_id, "runbook", message, settings,
                                return_state=True)
    if not told.is_completed():
        result.pending.append(f"stakeholders not told ({told.message})")
    incident = mitigate_incident(result.incident_id, "runbook", "; ".join(result.actions),
                                 settings)
    publish_incident_review(incident)
    result.actions.append(f"post-incident review opened (artifact "
                          f"incident-review-{incident.id.lower()})")


def _check_health(result: EmergencyResult, target: TargetKind, revision: str,
                  settings: RunbookSettings) -> None:
    """The standard checks on the revision switched back to, for a short window."""
    spec = read_deployed_spec(target, result.service, result.environment, settings)
    read = read_live_slot(target, result.service, result.environment, settings)
    restored, endpoint = read
    if spec is None or restored is None or restored.revision != revision:
        result.pending.append("health after the rollback not checked (service.yaml unknown)")
        return
    window = rollback_check_window(spec.policy_for(result.environment))
    state = verify_rollback(target, spec, restored, endpoint, window, settings,
                            return_state=True)
    if not state.is_completed():
        result.pending.append(f"health after the rollback not checked ({state.message})")
        return
    check = state.result()
    result.healthy_after = check.healthy
    result.actions.append(f"after the rollback {restored.revision} is {check.summary}")
    if not check.healthy:
        result.pending.append(f"{restored.revision} is not healthy either: restore by hand")


def _conclude(result: EmergencyResult, notified: State[NotifyResult], settings: RunbookSettings,
              mitigation: str | None, problem: str | None, second: Alert | None = None,
              follow_up: Callable[[EmergencyResult, RunbookSettings], None] | None = None,
              ) -> EmergencyResult | State[EmergencyResult]:
    """Record the mitigation on the page's incident, alert a failed automatic step, then
    publish the result."""
    pages = [notified]
    if second is not None:
        pages.append(publish_alert(second, settings, return_state=True))
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
                                        mitigation or f"automatic mitigation failed: {problem}",
                                        settings)
        result.incident_id, result.priority = incident.id, incident.priority.value
        result.actions.append(f"incident {incident.id} ({incident.priority.value}) opened; "
                              "page sent before the automatic step")
        if follow_up is not None:
            follow_up(result, settings)
    publish_emergency_result(result)
    get_run_logger().warning("%s %s/%s: %s", result.procedure.value, result.service,
                             result.environment, result.status.value)
    if problem is not None:
        # A Failed final state, not a traceback: the result (and its artifact) say why.
        return Failed(message=problem, data=result)
    return result
