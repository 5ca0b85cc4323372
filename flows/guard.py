"""The guard after promotion: its own flow run, watching a released revision for
``analysis.guard_s`` with the same checks as the analysis window, and rolling it back (with
its report and alert) when a check fails. Started by the pipeline as its own process
(:func:`runbook.guard.launch`); ``python -m flows.guard resume`` restarts the guards whose
process is gone.

    python -m flows.guard watch SERVICE ENVIRONMENT REVISION
    python -m flows.guard resume
"""

from __future__ import annotations

import sys

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from flows.locks import one_deploy_at_a_time
from runbook import guard as guards
from runbook.analysis import Verdict, verify_gates
from runbook.guard import GuardRecord, GuardStep
from runbook.models import CheckMeasurement, Outcome, RunReport, Strategy
from runbook.names import Stage
from runbook.report import ReportBuilder
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from tasks.deploy import (
    discard_candidate,
    retire_slot,
    switch_traffic,
    tidy_environment,
    undo_rollout,
)
from tasks.guard import claim_guard, end_guard, guard_step, watch_release
from tasks.notify import notify_release
from tasks.report import publish_report


@flow(name="guard")
def guard(service: str, environment: str, revision: str) -> RunReport | State[RunReport]:
    """Watch ``revision`` until its guard expires; roll it back when a check fails.

    Args:
        service: The service's name.
        environment: The environment it was released to.
        revision: The released revision; a guard of any other revision is superseded.
    """
    settings = RunbookSettings.load()
    record = claim_guard(service, environment, revision, settings)
    if record is None:
        return Completed(message=f"{service}/{environment} {revision}: superseded, no guard")
    builder = ReportBuilder(RunReport(
        outcome=Outcome.RELEASED, service=service, environment=environment,
        strategy=record.strategy.value, target=record.target.value, image=record.slot.image,
        revision=revision, previous=record.previous.revision if record.previous else None,
        endpoint=record.endpoint, flow_run_url=flow_run.get_flow_run_ui_url(),
        guard_until=record.until,
    ))
    with builder.stage(Stage.GUARD) as stage:
        verdict = watch_release(record, settings)
        step = guard_step(record, settings)
        stage.detail = (f"{verdict.phase.value} after {len(verdict.results)} measurement(s); "
                        f"{step.value}")
        builder.gates(verify_gates(verdict))
        builder.report.measurements = [CheckMeasurement.model_validate(r.model_dump())
                                       for r in verdict.results]
        if verdict.decided and step is GuardStep.WATCH:
            stage.status = stage.status.FAILED
            stage.detail += ": " + "; ".join(verdict.reasons)
    if verdict.decided and step is GuardStep.WATCH:
        _roll_back(builder, record, verdict, settings)
    else:
        _hold(builder, record, step, settings)
    report = builder.report
    publish_report(report, None)
    if report.outcome is not Outcome.RELEASED:
        notify_release(report, settings)
        return Failed(message=f"{report.outcome.value}: {report.reason}", data=report)
    return report


def _hold(builder: ReportBuilder, record: GuardRecord, step: GuardStep,
          settings: RunbookSettings) -> None:
    """The guard expired (or a newer release took over): release what it kept ready."""
    if step is GuardStep.SUPERSEDED:
        end_guard(record, settings)  # a newer release's record stays
        builder.finish(Outcome.RELEASED, "superseded by a newer release or a rollback; "
                                         "the guard stopped without touching traffic")
        return
    with builder.stage(Stage.TIDY) as stage:
        done = tidy_environment(record.target, record.service, record.environment, settings)
        previous = record.previous
        # Rolling kept the previous revision beside the new one for the guard's switch back.
        if (record.strategy is Strategy.ROLLING and previous is not None
                and previous.color != record.slot.color):
            retire_slot(record.target, previous, settings)
            done.append(f"retired {previous.revision}")
        stage.detail = "; ".join(done) or "nothing to release"
    end_guard(record, settings)
    builder.finish(Outcome.RELEASED, f"guard held until {record.until.isoformat()}")


def _roll_back(builder: ReportBuilder, record: GuardRecord, verdict: Verdict,
               settings: RunbookSettings) -> None:
    logger = get_run_logger()
    reason = f"guard: verification {verdict.phase.value}: " + "; ".join(verdict.reasons)
    with builder.stage(Stage.ROLLBACK) as stage, one_deploy_at_a_time(
            record.service, record.environment, record.policy.deploy.lock_timeout_s,
            settings.stack):
        # Under the deploy slot, again: a newer release may have gone live while we waited.
        if guard_step(record, settings) is GuardStep.SUPERSEDED:
            stage.detail = "superseded while waiting for the deploy slot: nothing rolled back"
            builder.finish(Outcome.RELEASED, stage.detail)
            return
        if record.strategy is Strategy.ROLLING and record.previous is not None:
            restored = undo_rollout(record.target, record.service, record.environment,
                                    record.policy.deploy, settings)
            builder.report.revision = restored.revision
            stage.detail = f"rollout undone: traffic back on {restored.revision}"
        elif record.previous is not None:
            switch_traffic(record.target, record.previous, record.policy.deploy, settings)
            builder.report.revision = record.previous.revision
            logs = discard_candidate(record.target, record.slot, settings)
            if logs:
                logger.info("last logs of %s:\n%s", record.revision, logs)
            stage.detail = f"traffic back on {record.previous.revision}"
        else:
            stage.status = stage.status.FAILED
            stage.detail = "no previous revision kept: nothing to roll back to"
            end_guard(record, settings)
            builder.finish(Outcome.FAILED, f"{reason}; {stage.detail}")
            return
        end_guard(record, settings)
    builder.finish(Outcome.ROLLED_BACK, reason)


def main(argv: list[str]) -> int:
    if argv[:1] == ["watch"] and len(argv) == 4:
        state = guard(*argv[1:], return_state=True)
        return 0 if state.is_completed() else 1
    if argv == ["resume"]:
        settings = StackSettings()
        for line in guards.resume_all(settings.state_dir, settings.prefect_api_url):
            print(f"resumed: {line}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
