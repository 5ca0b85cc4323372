"""The release pipeline: build, test, scan, preview, perf, promote, verify, then keep the
release or switch back. Outcome: released | rolled_back | blocked | failed |
rollback_failed.

``_Run.procedure`` reads as the runbook: one step a line, each step returns what happened
(a value to go on with, or an :class:`Ending`), ``_Run.execute`` decides the outcome once,
and the flow publishes the report, the metrics and the alert in a ``finally`` whatever
raised. Strategies live in ``flows/strategies/``. Every step that moves traffic is written
to the release record first (``runbook/release_record.py``), so a run killed at any point
leaves the truth behind: the next run (or the scheduled ``tidy``) rolls an unverified
release back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import ModuleType

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows.approval import ask_for_approval
from flows.locks import one_deploy_at_a_time
from flows.strategies import Ending, strategy_module
from runbook import gates as gate_rules
from runbook.alerts.release import interrupted_release_alert, metrics_gap_alert
from runbook.analysis import Verdict, verify_gates
from runbook.approval import (
    AfterVerification,
    after_verification,
    describe,
    inconclusive_question,
    promotion_needs_approval,
    promotion_question,
)
from runbook.build import content_revision, repository
from runbook.errors import GateFailed, RunbookError
from runbook.guard import GuardRecord, guard_until
from runbook.infra import resolve
from runbook.models import (
    CheckMeasurement,
    Environment,
    ImageRef,
    Outcome,
    RunReport,
    Slot,
    StageStatus,
    Strategy,
    TargetKind,
)
from runbook.names import GateName, Stage
from runbook.perf.degradation import judge_degradation
from runbook.policy import Policy
from runbook.release_record import ReleasePhase, ReleaseRecord, is_verified
from runbook.report import ReportBuilder
from runbook.rollback import rollback_check_window
from runbook.scan import coverage as coverage_report
from runbook.scan.verdict import scan_gates
from runbook.service import Service, load_service
from runbook.settings_root import RunbookSettings
from tasks.build import build_image, image_in_registry, prebuilt_image, resolve_base_images
from tasks.deploy import (
    deploy_candidate,
    discard_candidate,
    read_endpoint,
    read_live_slot,
    roll_out_release,
    switch_traffic,
    tidy_environment,
)
from tasks.guard import start_guard
from tasks.notify import notify_release, publish_alert
from tasks.observe import push_run_metrics
from tasks.perf import (
    emit_perf_degraded,
    load_test_preview,
    mark_perf_baseline,
    publish_perf_results,
    read_perf_baseline,
    record_perf_report,
)
from tasks.release import read_release_record, record_release, recover_interrupted_release
from tasks.report import publish_report
from tasks.rollback import verify_rollback
from tasks.scan import publish_scan, scan_release
from tasks.test import run_tests
from tasks.verify import analyze_release


@flow(name="pipeline", log_prints=True)
def pipeline(
    service_dir: str,
    environment: Environment = Environment.STAGING,
    strategy: Strategy = Strategy.BLUE_GREEN,
    target: TargetKind | None = None,
    build_args: dict[str, str] | None = None,
    report_path: str | None = None,
    image: str | None = None,
    config: str | None = None,
) -> RunReport | State[RunReport]:
    """Deliver one service to one environment.

    Args:
        service_dir: Directory with the service's ``Dockerfile`` and ``service.yaml``.
        environment: ``staging`` or ``production``.
        strategy: ``blue-green`` or ``rolling``.
        target: ``docker`` or ``kubernetes``; unset: the environment's ``target`` in
            ``runbook.yaml``, else docker.
        build_args: Docker build arguments (part of the revision).
        report_path: Where to write the run report (JSON) as well as the artifact.
        image: ``REPO@sha256:DIGEST`` built elsewhere (CI, a cluster pool without Docker):
            no build; the digest must exist in the environment's registry.
        config: Path of the ``runbook.yaml`` on the worker; unset: the worker's
            ``$RUNBOOK_CONFIG``, else the ``runbook.yaml`` of its checkout, else none.
    """
    service = load_service(service_dir)
    settings = RunbookSettings.load(config)
    chosen = resolve(settings.stack, Environment(environment).value, target).target
    run = _Run(service, Environment(environment), Strategy(strategy), chosen,
               settings, build_args or {})
    run.prebuilt = image
    try:
        run.execute()
    finally:
        _conclude(run.builder.report, report_path, settings)
    report = run.builder.report
    if report.outcome is not Outcome.RELEASED:
        # A Failed final state (not an exception): `prefect deployment run --watch` and CI
        # see a failure, and the logs keep the verdict instead of a traceback.
        return Failed(name=final_state_name(report.outcome),
                      message=f"{report.outcome.value}: {report.reason}", data=report)
    return report


def final_state_name(outcome: Outcome) -> str:
    """The name of a run's final Failed state (``Blocked``, ``RolledBack``,
    ``RollbackFailed``, ``Failed``): `prefect deployment run --watch` prints it, so a CI log
    says which outcome ended the run although the exit code is Prefect's 1."""
    return "".join(word.title() for word in outcome.value.split("_"))


def _conclude(report: RunReport, report_path: str | None, settings: RunbookSettings) -> None:
    """The report, the run's metrics and its alert, each whatever the others did: one
    unreachable service (Prefect's artifacts, the Pushgateway, Slack) costs only itself.
    Undeliverable alerts wait in the outbox, never fail the run."""
    logger = get_run_logger()
    published = publish_report(report, report_path, return_state=True)
    # Observability never changes the outcome: a failed push stays a failed task run, and
    # one warning (deduplicated while open) says the pipeline's metrics have a gap.
    pushed = push_run_metrics(report, settings.stack, return_state=True)
    # After the report is final: one alert per problem, or the resolution of open ones.
    notified = notify_release(report, settings, return_state=True)
    if not pushed.is_completed():
        notified = publish_alert(metrics_gap_alert(report, str(pushed.message)), settings,
                                 return_state=True)
    for name, state in (("report", published), ("metrics", pushed), ("alert", notified)):
        if not state.is_completed():
            logger.error("run %s not published: %s", name, state.message)


class _Run:
    """One pipeline run's procedure; every step is a task, every decision a pure function."""

    def __init__(self, service: Service, environment: Environment, strategy: Strategy,
                 target: TargetKind, settings: RunbookSettings,
                 build_args: dict[str, str]) -> None:
        self.service = service
        self.spec = service.spec
        self.env = environment.value
        self.strategy = strategy
        self.moves: ModuleType = strategy_module(strategy)
        self.target = target
        self.settings = settings
        self.stack = settings.stack
        self.build_args = {**self.spec.build.args, **build_args}
        self.policy: Policy = self.spec.policy_for(self.env)
        self.builder = ReportBuilder(RunReport(
            outcome=Outcome.FAILED, service=self.spec.name, environment=self.env,
            strategy=strategy.value, target=target.value,
            flow_run_url=flow_run.get_flow_run_ui_url(),
        ))
        self.logger = get_run_logger()
        self.run_id = str(flow_run.get_id()) if flow_run.get_id() else None
        self.candidate: Slot | None = None
        self.previous: Slot | None = None
        self.preview_url = ""
        self.moved = False  # True once traffic went (or may have gone) to the candidate
        self.prebuilt: str | None = None  # --image: deploy this digest, build nothing

    # -- the one place a run ends ---------------------------------------------------------

    def execute(self) -> None:
        """Run the procedure and set the outcome once, whatever raised."""
        ending: Ending | None = None
        try:
            ending = self.procedure()
        except Exception as exc:
            ending = self._after_error(exc)
        finally:
            # None: interrupted (KeyboardInterrupt, SystemExit); the release record keeps
            # what moved, and the next run or `tidy` rolls an unverified release back.
            ending = ending or Ending(Outcome.FAILED, "run interrupted")
            self.builder.finish(ending.outcome, ending.reason)

    def procedure(self) -> Ending:
        """The runbook, in order."""
        self.read_live()
        image = self._build()
        self.builder.report.candidate = image.revision
        if (stop := self._quality_gates(image)) is not None:
            return stop
        with one_deploy_at_a_time(self.spec.name, self.env, self.policy.deploy.lock_timeout_s,
                                  self.stack):
            # Again: a run that held the slot before this one may have changed it.
            if (stop := self._recover_interrupted()) is not None:
                return stop
            live = self.read_live()
            self._tidy()
            if self._already_live(image, live):
                return Ending(Outcome.RELEASED, "already live")
            return self.moves.release(self, image, live)

    def _after_error(self, exc: Exception) -> Ending:
        if isinstance(exc, GateFailed):
            self._discard(self.candidate)
            return Ending(Outcome.BLOCKED, str(exc))
        self.logger.exception("pipeline failed")
        reason = f"{type(exc).__name__}: {exc}"
        if self.moved:
            # Traffic went (or may have gone) to the candidate: switch back, even from a
            # rollout that broke half way (its candidate slot is not known then).
            return self.roll_back(self.candidate, self.previous,
                                  f"pipeline error after switch: {reason}")
        self._discard(self.candidate)
        return Ending(Outcome.FAILED, reason)

    # -- steps before the deploy slot -----------------------------------------------------

    def read_live(self) -> Slot | None:
        live, endpoint = read_live_slot(self.target, self.spec.name, self.env, self.settings)
        self.builder.report.previous = live.revision if live else None
        self.builder.report.revision = self.builder.report.previous
        self.builder.report.endpoint = endpoint
        return live

    def _build(self) -> ImageRef:
        if self.prebuilt is not None:
            # The engine runs the image only for the tests and on the docker target.
            pull = self.spec.test is not None or self.target is TargetKind.DOCKER
            image = prebuilt_image(self.prebuilt, self.env, pull, self.stack)
            self.builder.skip(Stage.BUILD, f"built elsewhere: {image.by_digest}")
            self.builder.report.image = image.by_digest
            return image
        with self.builder.stage(Stage.BUILD) as stage:
            # One deadline for resolving, building and pushing, retries included.
            deadline = time.time() + self.spec.build.timeout_s
            bases = resolve_base_images(self.service, self.build_args, self.stack)
            revision = content_revision(self.service, self.build_args, bases.resolved)
            repo = repository(resolve(self.stack, self.env).registry.host, self.spec.name)
            image = build_image(self.service, self.build_args, repo, revision, self.stack,
                                deadline)
            if not image_in_registry(image, self.stack):
                # A cached result can outlive the registry's copy: rebuild rather than fail.
                image = build_image.with_options(refresh_cache=True)(
                    self.service, self.build_args, repo, revision, self.stack, deadline
                )
            stage.detail = image.by_digest
            self.builder.report.image = image.by_digest
            return image

    def _quality_gates(self, image: ImageRef) -> Ending | None:
        coverage = coverage_report.NOT_CONFIGURED
        if self.spec.test is None:
            self.builder.skip(Stage.TEST, "no test command declared in service.yaml")
        else:
            with self.builder.stage(Stage.TEST) as stage:
                result = run_tests(image, self.spec.test, self.stack)
                stage.detail = gate_rules.describe_suite(result)
                if (stop := self._gates_pass([gate_rules.suite_gate(result)], stage)):
                    return stop
                coverage = coverage_report.from_test_stage(self.spec.test.coverage_path,
                                                           result.coverage_xml)
        with self.builder.stage(Stage.SCAN) as stage:
            scan = scan_release(self.service, self.env, image, self.policy.scan, coverage,
                                self.stack, previous_revision=self.builder.report.previous)
            gates = scan_gates(scan, self.policy.scan, self.policy.thresholds)
            publish_scan(scan, gates)
            stage.detail = (f"{len(scan.findings)} finding(s), {len(scan.suppressed)} "
                            f"suppressed; " + ", ".join(f"{r.scanner} {r.status.value}"
                                                        for r in scan.results))
            return self._gates_pass(gates, stage)

    # -- steps under the deploy slot ------------------------------------------------------

    def _recover_interrupted(self) -> Ending | None:
        """A release another run promoted and never verified (it died): roll it back first.
        When that fails, this run stops: nothing new goes out over an environment in an
        unknown state."""
        state = recover_interrupted_release(self.spec.name, self.env, self.settings,
                                            self.run_id, return_state=True)
        if state.is_completed() and state.result() is None:
            return None
        with self.builder.stage(Stage.RECOVER) as stage:
            if not state.is_completed():
                stage.status, stage.detail = StageStatus.FAILED, str(state.message)
                live_now = self._live_now()
                self.builder.report.revision = live_now
                return Ending(Outcome.ROLLBACK_FAILED,
                              f"a release left unverified by a dead run could not be rolled "
                              f"back ({state.message}); live now: {live_now}")
            recovery = state.result()
            stage.detail = (f"{recovery.interrupted.candidate} was left unverified by run "
                            f"{recovery.interrupted.owner_run}: {recovery.detail}")
        # Its own problem, its own alert; this run goes on with its release.
        interrupted = recovery.interrupted
        publish_alert(interrupted_release_alert(
            self.spec.name, self.env, interrupted.candidate, interrupted.owner_run,
            recovery.serving, recovery.detail, self.builder.report.flow_run_url),
            self.settings, return_state=True)
        return None

    def _tidy(self) -> None:
        """Release what the environment keeps past its keep-delay (a standby's replicas).
        Under the deploy slot, so it never races a rollback scaling the standby up. Never
        decides the outcome: a failure is logged and the run goes on."""
        state = tidy_environment(self.target, self.spec.name, self.env, self.settings,
                                 return_state=True)
        if not state.is_completed():
            self.logger.warning("tidying %s/%s failed, going on: %s", self.spec.name,
                                self.env, state.message)

    def _already_live(self, image: ImageRef, live: Slot | None) -> bool:
        """Only a *verified* live revision counts: a promoted one whose run died is not."""
        if live is None or live.revision != image.revision:
            return False
        if not is_verified(read_release_record(self.spec.name, self.env, self.stack),
                           image.revision):
            self.logger.warning("%s is live but was never verified: delivering it again",
                                image.revision)
            return False
        self.builder.skip(Stage.PREVIEW, f"{image.revision} is live and verified already; "
                                     "nothing to do")
        return True

    def preview(self, image: ImageRef) -> Slot | Ending:
        self._record(image.revision, ReleasePhase.PREVIEWING)
        with self.builder.stage(Stage.PREVIEW) as stage:
            try:
                slot, self.preview_url = deploy_candidate(
                    self.target, self.spec, self.env, image, self.policy.deploy, self.settings
                )
            except GateFailed as exc:
                self.builder.gates([gate_rules.Gate(
                    name=GateName.CANDIDATE_HEALTH, passed=False, value="unhealthy",
                    threshold="healthy", detail=str(exc),
                )])
                stage.status = stage.status.FAILED
                stage.detail = str(exc)
                return Ending(Outcome.BLOCKED, str(exc))
            self.candidate = slot
            self.builder.report.endpoint = read_endpoint(self.target, self.spec.name, self.env,
                                                         self.settings)
            stage.detail = f"{slot.revision} healthy in {slot.color} at {self.preview_url}"
            return slot

    def perf(self, candidate: Slot) -> Ending | None:
        with self.builder.stage(Stage.PERF) as stage:
            # The preview URL reaches the candidate only: no load on live traffic.
            report = load_test_preview(self.target, candidate, self.preview_url, self.service,
                                       self.policy.perf, self.settings)
            baseline = read_perf_baseline(self.spec.name, self.env, self.stack)
            record_perf_report(self.spec.name, self.env, candidate.revision, report,
                               self.stack)
            degradation = judge_degradation(
                report, baseline.report if baseline else None,
                baseline.revision if baseline else None, self.policy.thresholds,
            )
            gates = gate_rules.perf_gates(report, self.policy.thresholds,
                                          self.policy.perf.required_rps, degradation)
            publish_perf_results(self.spec.name, self.env, candidate.revision, report,
                                 baseline, degradation, gates, self.stack)
            if degradation.critical:
                emit_perf_degraded(self.spec.name, self.env, candidate.revision, degradation)
            stage.detail = (f"{report.requests} requests, {report.rps:.1f} rps, "
                            f"avg {report.avg_latency_s} s, p95 {report.p95_latency_s} s, "
                            f"{report.failures} failed")
            stop = self._gates_pass(gates, stage)
        if stop is not None:
            self._discard(candidate)
        return stop

    def approve_promotion(self, candidate: Slot, live: Slot | None) -> Ending | None:
        if not promotion_needs_approval(self.policy.deploy):
            return None
        question = promotion_question(candidate, live.revision if live else None)
        with self.builder.stage(Stage.APPROVAL) as stage:
            approval = ask_for_approval(Stage.PROMOTE, question, self.policy.deploy)
            self.builder.report.approvals.append(approval)
            stage.detail = describe(approval)
            if approval.approved:
                return None
            stage.status = stage.status.FAILED
        self._discard(candidate)
        return Ending(Outcome.BLOCKED, describe(approval))

    def promote(self, candidate: Slot, live: Slot | None) -> None:
        """Recorded as promoted-unverified *before* the switch: a run killed in between
        leaves a record the next run rolls back, never a release taken for verified."""
        self._record(candidate.revision, ReleasePhase.PROMOTED_UNVERIFIED, live)
        with self.builder.stage(Stage.PROMOTE):
            self.previous, self.moved = live, True
            switch_traffic(self.target, candidate, self.policy.deploy, self.settings)
            self.builder.report.revision = candidate.revision

    def roll_out(self, image: ImageRef, live: Slot | None) -> Slot:
        self._record(image.revision, ReleasePhase.PROMOTED_UNVERIFIED, live)
        with self.builder.stage(Stage.ROLLOUT) as stage:
            self.previous, self.moved = live, True
            slot = roll_out_release(self.target, self.spec, self.env, image, self.policy.deploy,
                                    self.settings)
            self.candidate = slot
            self.builder.report.revision = slot.revision
            self.builder.report.endpoint = read_endpoint(self.target, self.spec.name, self.env,
                                                         self.settings)
            stage.detail = f"{slot.revision} rolled out in {slot.color}"
        return slot

    def verify(self, candidate: Slot, previous: Slot | None) -> Ending:
        return self._verify(candidate, previous, str(self.builder.report.endpoint))

    def _verify(self, candidate: Slot, previous: Slot | None, endpoint: str) -> Ending:
        with self.builder.stage(Stage.VERIFY) as stage:
            verdict = analyze_release(self.target, self.spec, candidate, endpoint, self.policy,
                                      self.settings)
            self.builder.gates(verify_gates(verdict))
            self.builder.report.measurements = [
                CheckMeasurement.model_validate(r.model_dump()) for r in verdict.results]
            stage.detail = f"{verdict.phase.value} after {len(verdict.results)} measurement(s)"
            if not verdict.keep:
                stage.status = stage.status.FAILED
                stage.detail += ": " + "; ".join(verdict.reasons)
        if verdict.keep or self._keep_despite(candidate, verdict):
            guarded = self.policy.analysis.guard_s > 0
            # Under a guard the previous revision stays ready: the guard retires it.
            if not guarded:
                self.moves.keep(self, candidate, previous)
            self._record(candidate.revision, ReleasePhase.VERIFIED, previous)
            mark_perf_baseline(self.spec.name, self.env, candidate.revision, self.stack)
            if guarded:
                self._guard(candidate, previous, endpoint)
            return Ending(Outcome.RELEASED)
        return self.roll_back(candidate, previous, f"verification {verdict.phase.value}: "
                              + "; ".join(verdict.reasons))

    def _keep_despite(self, candidate: Slot, verdict: Verdict) -> bool:
        """An inconclusive verdict asks a person when approvals are on; otherwise no."""
        if after_verification(verdict.phase, self.policy.deploy) is not AfterVerification.ASK:
            return False
        with self.builder.stage(Stage.APPROVAL) as stage:
            approval = ask_for_approval(Stage.VERIFY,
                                        inconclusive_question(candidate, verdict.reasons),
                                        self.policy.deploy)
            self.builder.report.approvals.append(approval)
            stage.detail = describe(approval)
        return approval.approved

    def roll_back(self, candidate: Slot | None, previous: Slot | None, reason: str) -> Ending:
        """Traffic back on ``previous``. When the switch back itself fails (router or engine
        down past the retries), the run ends ``rollback_failed`` naming what is live now;
        the record stays promoted-unverified, so the next run or ``tidy`` tries again."""
        try:
            with self.builder.stage(Stage.ROLLBACK) as stage:
                stage.detail = self.moves.switch_back(self, candidate, previous)
                if previous is not None:
                    stage.detail += "; " + self._check_restored(previous)
        except Exception as exc:
            self.logger.exception("rollback failed")
            live_now = self._live_now()
            self.builder.report.revision = None if live_now.startswith("unknown") else live_now
            return Ending(Outcome.ROLLBACK_FAILED,
                          f"{reason}; switching back to "
                          f"{previous.revision if previous else 'nothing'} failed "
                          f"({type(exc).__name__}: {exc}); live now: {live_now}")
        if candidate is not None:
            # Traffic is safe already: a record that cannot be written only makes the next
            # run find "traffic never left the previous revision".
            self._record(candidate.revision, ReleasePhase.ROLLED_BACK, previous, must=False)
        return Ending(Outcome.ROLLED_BACK, reason)

    # -- helpers --------------------------------------------------------------------------

    def _record(self, candidate: str, phase: ReleasePhase, previous: Slot | None = None,
                must: bool = True) -> None:
        """Write the release record; ``must``: the step it guards does not happen without it."""
        state = record_release(ReleaseRecord(
            service=self.spec.name, environment=self.env, candidate=candidate,
            previous=previous.revision if previous else self.builder.report.previous,
            phase=phase, strategy=self.strategy.value, target=self.target.value,
            owner_run=self.run_id, deploy=self.policy.deploy,
        ), self.stack, return_state=True)
        if not state.is_completed():
            if must:
                raise RunbookError(f"release record not written ({state.message}): "
                                   f"{phase.value} of {candidate} not started")
            self.logger.warning("release record (%s) not written: %s", phase.value,
                                state.message)

    def _check_restored(self, restored: Slot) -> str:
        """The standard checks on the revision rolled back to, for a short window."""
        state = verify_rollback(self.target, self.spec, restored,
                                str(self.builder.report.endpoint),
                                rollback_check_window(self.policy), self.settings,
                                return_state=True)
        if not state.is_completed():  # traffic is back already; the report says they broke
            return f"checks after the rollback could not run: {state.message}"
        return f"after the rollback {state.result().summary}"

    def _live_now(self) -> str:
        """What serves the environment, as far as the target can still say."""
        state = read_live_slot(self.target, self.spec.name, self.env, self.settings,
                               return_state=True)
        if not state.is_completed():
            return f"unknown ({state.message})"
        live, _ = state.result()
        return live.revision if live else "nothing"

    def _guard(self, released: Slot, previous: Slot | None, endpoint: str) -> None:
        """Start the guard (its own process and flow run); this run ends now."""
        now = datetime.now(UTC)
        record = GuardRecord(
            service=self.spec.name, environment=self.env, target=self.target,
            strategy=self.strategy, slot=released, previous=previous, endpoint=endpoint,
            spec=self.spec, policy=self.policy, started_at=now,
            until=guard_until(now, self.policy.analysis.guard_s),
            pipeline_run_url=self.builder.report.flow_run_url,
        )
        with self.builder.stage(Stage.GUARD) as stage:
            # A verified release is never rolled back because its guard could not start.
            state = start_guard(record, self.settings, return_state=True)
            if not state.is_completed():
                stage.status = stage.status.FAILED
                stage.detail = f"guard not started: {state.message}"
                self.logger.warning("%s", stage.detail)
                return
            self.builder.report.guard_until = record.until
            stage.detail = f"{released.revision} guarded until {record.until.isoformat()}"

    def _discard(self, candidate: Slot | None) -> None:
        if candidate is None:
            return
        state = discard_candidate(self.target, candidate, self.settings, return_state=True)
        if not state.is_completed():
            # The outcome stands; the idle color is cleared by the next deploy.
            self.logger.warning("candidate %s not removed: %s", candidate.revision,
                                state.message)

    def _gates_pass(self, gates: list[gate_rules.Gate], stage: object) -> Ending | None:
        self.builder.gates(gates)
        if not gate_rules.failed(gates):
            return None
        reason = "gate failed: " + gate_rules.describe_failures(gates)
        stage.status = stage.status.FAILED  # type: ignore[attr-defined]
        stage.detail += f"; {reason}"  # type: ignore[attr-defined]
        return Ending(Outcome.BLOCKED, reason)
