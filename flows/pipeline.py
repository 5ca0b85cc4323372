"""The release pipeline: build, test, scan, preview, perf, promote, verify, then keep the
release or switch back. Outcome: released | rolled_back | blocked | failed."""

from __future__ import annotations

import contextlib

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows.approval import ask_for_approval
from flows.locks import one_deploy_at_a_time
from runbook import gates as gate_rules
from runbook.analysis import Verdict
from runbook.approval import (
    AfterVerification,
    after_verification,
    describe,
    inconclusive_question,
    promotion_needs_approval,
    promotion_question,
)
from runbook.build import content_revision, repository
from runbook.errors import GateFailed
from runbook.infra import configured_settings, resolve
from runbook.models import (
    Environment,
    ImageRef,
    Outcome,
    RunReport,
    Slot,
    Strategy,
    TargetKind,
)
from runbook.perf.baseline import judge_degradation
from runbook.policy import Policy
from runbook.report import ReportBuilder
from runbook.scan import coverage as coverage_report
from runbook.scan.verdict import scan_gates
from runbook.service import Service, load_service
from runbook.settings import StackSettings
from tasks.build import build_image, image_in_registry, prebuilt_image, resolve_base_images
from tasks.deploy import (
    deploy_candidate,
    discard_candidate,
    read_live_slot,
    retire_slot,
    roll_out_release,
    switch_traffic,
    tidy_environment,
    undo_rollout,
)
from tasks.notify import notify_release
from tasks.observe import push_run_metrics
from tasks.perf import (
    emit_perf_degraded,
    load_test_preview,
    mark_perf_baseline,
    publish_perf_results,
    read_perf_baseline,
    record_perf_report,
)
from tasks.report import publish_report
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
        target: Where it runs; unset: the environment's ``target`` in ``runbook.yaml``,
            else docker.
        image: ``REPO@sha256:DIGEST`` built elsewhere (CI, a cluster pool without Docker):
            no build; the digest must exist in the environment's registry.
        config: Path of the ``runbook.yaml`` on the worker; unset: the worker's
            ``$RUNBOOK_CONFIG``, else the ``runbook.yaml`` of its checkout, else none.
    """
    service = load_service(service_dir)
    settings = configured_settings(config)
    chosen = resolve(settings, Environment(environment).value, target).target
    run = _Run(service, Environment(environment), Strategy(strategy), chosen,
               settings, build_args or {})
    run.prebuilt = image
    try:
        run.execute()
    finally:
        publish_report(run.builder.report, report_path)
        # Observability never changes the outcome: a failed push stays a failed task run.
        push_run_metrics(run.builder.report, settings, return_state=True)
    report = run.builder.report
    # After the report is final: one alert per problem (deduplicated), or the resolution
    # of open ones when released. Undeliverable alerts wait in the outbox, never fail the run.
    notify_release(report)
    if report.outcome is not Outcome.RELEASED:
        # A Failed final state (not an exception): `prefect deployment run --watch` and CI
        # see a failure, and the logs keep the verdict instead of a traceback.
        return Failed(message=f"{report.outcome.value}: {report.reason}", data=report)
    return report


class _Run:
    """One pipeline run's sequence; every step is a task, every decision a pure function."""

    def __init__(self, service: Service, environment: Environment, strategy: Strategy,
                 target: TargetKind, settings: StackSettings, build_args: dict[str, str]) -> None:
        self.service = service
        self.spec = service.spec
        self.env = environment.value
        self.strategy = strategy
        self.target = target
        self.settings = settings
        self.build_args = {**self.spec.build.args, **build_args}
        self.policy: Policy = self.spec.policy_for(self.env)
        self.builder = ReportBuilder(RunReport(
            outcome=Outcome.FAILED, service=self.spec.name, environment=self.env,
            strategy=strategy.value, target=target.value,
            flow_run_url=flow_run.get_flow_run_ui_url(),
        ))
        self.logger = get_run_logger()
        self.candidate: Slot | None = None
        self.prebuilt: str | None = None  # --image: deploy this digest, build nothing
        self.moved = False  # True once traffic went to the candidate

    def execute(self) -> None:
        live: Slot | None = None
        # The deploy slot, once taken, is held until rollback or discard is done.
        with contextlib.ExitStack() as deploy_slot:
            try:
                live, endpoint = self._read_live()
                image = self._build()
                if not self._quality_gates(image):
                    return
                deploy_slot.enter_context(one_deploy_at_a_time(
                    self.spec.name, self.env, self.policy.deploy.lock_timeout_s))
                # Again: a run that held the slot before this one may have changed it.
                live, endpoint = self._read_live()
                self._tidy()
                self._deploy(image, live, endpoint)
            except GateFailed as exc:
                self._discard(self.candidate)
                self.builder.finish(Outcome.BLOCKED, str(exc))
            except Exception as exc:
                self.logger.exception("pipeline failed")
                if self.moved and self.candidate is not None:
                    self._roll_back(self.candidate, live, f"pipeline error after switch: {exc}")
                    return
                self._discard(self.candidate)
                self.builder.finish(Outcome.FAILED, f"{type(exc).__name__}: {exc}")

    def _read_live(self) -> tuple[Slot | None, str]:
        live, endpoint = read_live_slot(self.target, self.spec.name, self.env, self.settings)
        self.builder.report.previous = live.revision if live else None
        self.builder.report.revision = self.builder.report.previous
        self.builder.report.endpoint = endpoint
        return live, endpoint

    def _tidy(self) -> None:
        """Release what the environment keeps past its keep-delay (a standby's replicas).
        Under the deploy slot, so it never races a rollback scaling the standby up. Never
        decides the outcome: a failure is logged and the run goes on."""
        state = tidy_environment(self.target, self.spec.name, self.env, self.settings,
                                 return_state=True)
        if not state.is_completed():
            self.logger.warning("tidying %s/%s failed, going on: %s", self.spec.name,
                                self.env, state.message)

    def _deploy(self, image: ImageRef, live: Slot | None, endpoint: str) -> None:
        """Preview, perf, approval, promote, verify: the part one run at a time does."""
        if live is not None and live.revision == image.revision:
            self.builder.skip("preview", f"{image.revision} is live already; nothing to do")
            self.builder.finish(Outcome.RELEASED, "already live")
            return
        if self.strategy is Strategy.ROLLING:
            self._roll_out(image, live, endpoint)
            return
        self.candidate = self._preview(image)
        if self.candidate is None or not self._perf(self.candidate):
            return
        if not self._promotion_approved(self.candidate, live):
            return
        with self.builder.stage("promote"):
            switch_traffic(self.target, self.candidate, self.settings)
            self.moved = True
            self.builder.report.revision = self.candidate.revision
        self._verify(self.candidate, live, endpoint)

    def _roll_out(self, image: ImageRef, live: Slot | None, endpoint: str) -> None:
        """Rolling: no preview slot, so no perf stage (load never goes to live traffic);
        the rollout itself is the switch, verification decides, undo is the rollback."""
        self.builder.skip("preview", "rolling strategy: the release replaces the live one")
        self.builder.skip("perf", "rolling strategy has no preview slot and load is never "
                                  "sent to live traffic; blue-green runs the perf gates")
        with self.builder.stage("rollout") as stage:
            slot = roll_out_release(self.target, self.spec, self.env, image, self.policy.deploy,
                                    self.settings)
            self.candidate, self.moved = slot, True
            self.builder.report.revision = slot.revision
            stage.detail = f"{slot.revision} rolled out in {slot.color}"
        self._verify(slot, live, endpoint)

    def _promotion_approved(self, candidate: Slot, live: Slot | None) -> bool:
        if not promotion_needs_approval(self.policy.deploy):
            return True
        question = promotion_question(candidate, live.revision if live else None)
        with self.builder.stage("approval") as stage:
            approval = ask_for_approval("promote", question, self.policy.deploy)
            self.builder.report.approvals.append(approval)
            stage.detail = describe(approval)
            if approval.approved:
                return True
            stage.status = stage.status.FAILED
        self._discard(candidate)
        self.builder.finish(Outcome.BLOCKED, describe(approval))
        return False

    def _keep_despite(self, candidate: Slot, verdict: Verdict) -> bool:
        """An inconclusive verdict asks a person when approvals are on; otherwise no."""
        if after_verification(verdict.phase, self.policy.deploy) is not AfterVerification.ASK:
            return False
        with self.builder.stage("approval") as stage:
            approval = ask_for_approval("verify", inconclusive_question(candidate, verdict.reasons),
                                        self.policy.deploy)
            self.builder.report.approvals.append(approval)
            stage.detail = describe(approval)
        return approval.approved

    def _build(self) -> ImageRef:
        if self.prebuilt is not None:
            # The engine runs the image only for the tests and on the docker target.
            pull = self.spec.test is not None or self.target is TargetKind.DOCKER
            image = prebuilt_image(self.prebuilt, self.env, pull, self.settings)
            self.builder.skip("build", f"built elsewhere: {image.by_digest}")
            self.builder.report.image = image.by_digest
            return image
        with self.builder.stage("build") as stage:
            bases = resolve_base_images(self.service, self.build_args, self.settings)
            revision = content_revision(self.service, self.build_args, bases.resolved)
            repo = repository(resolve(self.settings, self.env).registry.host, self.spec.name)
            image = build_image(self.service, self.build_args, repo, revision, self.settings)
            if not image_in_registry(image, self.settings):
                # A cached result can outlive the registry's copy: rebuild rather than fail.
                image = build_image.with_options(refresh_cache=True)(
                    self.service, self.build_args, repo, revision, self.settings
                )
            stage.detail = image.by_digest
            self.builder.report.image = image.by_digest
            return image

    def _quality_gates(self, image: ImageRef) -> bool:
        coverage = coverage_report.NOT_CONFIGURED
        if self.spec.test is None:
            self.builder.skip("test", "no test command declared in service.yaml")
        else:
            with self.builder.stage("test") as stage:
                result = run_tests(image, self.spec.test, self.settings)
                stage.detail = f"exit code {result.exit_code} in {result.duration_s:.1f} s"
                if not self._gates_pass([gate_rules.suite_gate(result)], stage):
                    return False
                coverage = coverage_report.from_test_stage(self.spec.test.coverage_path,
                                                           result.coverage_xml)
        with self.builder.stage("scan") as stage:
            scan = scan_release(self.service, self.env, image, self.policy.scan, coverage,
                                self.settings)
            gates = scan_gates(scan, self.policy.scan, self.policy.thresholds)
            publish_scan(scan, gates)
            stage.detail = (f"{len(scan.findings)} finding(s), {len(scan.suppressed)} "
                            f"suppressed; " + ", ".join(f"{r.scanner} {r.status.value}"
                                                        for r in scan.results))
            return self._gates_pass(gates, stage)

    def _preview(self, image: ImageRef) -> Slot | None:
        with self.builder.stage("preview") as stage:
            try:
                slot, self.preview_url = deploy_candidate(
                    self.target, self.spec, self.env, image, self.policy.deploy, self.settings
                )
            except GateFailed as exc:
                self.builder.gates([gate_rules.Gate(
                    name="candidate_health", passed=False, value="unhealthy", threshold="healthy",
                    detail=str(exc),
                )])
                stage.status = stage.status.FAILED
                stage.detail = str(exc)
                self.builder.finish(Outcome.BLOCKED, str(exc))
                return None
            stage.detail = f"{slot.revision} healthy in {slot.color} at {self.preview_url}"
            return slot

    def _perf(self, candidate: Slot) -> bool:
        with self.builder.stage("perf") as stage:
            # The preview URL reaches the candidate only: no load on live traffic.
            report = load_test_preview(self.target, candidate, self.preview_url, self.service,
                                       self.policy.perf, self.settings)
            baseline = read_perf_baseline(self.spec.name, self.env, self.settings)
            record_perf_report(self.spec.name, self.env, candidate.revision, report,
                               self.settings)
            degradation = judge_degradation(
                report, baseline.report if baseline else None,
                baseline.revision if baseline else None, self.policy.thresholds,
            )
            gates = gate_rules.perf_gates(report, self.policy.thresholds,
                                          self.policy.perf.required_rps, degradation)
            publish_perf_results(self.spec.name, self.env, candidate.revision, report,
                                 baseline, degradation, gates, self.settings)
            if degradation.critical:
                emit_perf_degraded(self.spec.name, self.env, candidate.revision, degradation)
            stage.detail = (f"{report.requests} requests, {report.rps:.1f} rps, "
                            f"avg {report.avg_latency_s} s, p95 {report.p95_latency_s} s, "
                            f"{report.failures} failed")
            if self._gates_pass(gates, stage):
                return True
        self._discard(candidate)
        return False

    def _verify(self, candidate: Slot, previous: Slot | None, endpoint: str) -> None:
        with self.builder.stage("verify") as stage:
            verdict = analyze_release(self.target, self.spec, candidate, endpoint, self.policy,
                                      self.settings)
            stage.detail = f"{verdict.phase.value} after {len(verdict.results)} measurement(s)"
            if not verdict.keep:
                stage.status = stage.status.FAILED
                stage.detail += ": " + "; ".join(verdict.reasons)
        if verdict.keep or self._keep_despite(candidate, verdict):
            # A rollout in place (one Deployment) reused the previous slot: nothing to retire.
            if (self.strategy is Strategy.ROLLING and previous is not None
                    and previous.color != candidate.color):
                with self.builder.stage("retire"):
                    retire_slot(self.target, previous, self.settings)
            mark_perf_baseline(self.spec.name, self.env, candidate.revision, self.settings)
            self.builder.finish(Outcome.RELEASED)
            return
        self._roll_back(candidate, previous, f"verification {verdict.phase.value}: "
                        + "; ".join(verdict.reasons))

    def _roll_back(self, candidate: Slot, previous: Slot | None, reason: str) -> None:
        with self.builder.stage("rollback") as stage:
            if self.strategy is Strategy.ROLLING and previous is not None:
                restored = undo_rollout(self.target, self.spec.name, self.env,
                                        self.policy.deploy, self.settings)
                self.builder.report.revision = restored.revision
                stage.detail = f"rollout undone: traffic back on {restored.revision}"
                self.builder.finish(Outcome.ROLLED_BACK, reason)
                return
            if previous is not None:
                switch_traffic(self.target, previous, self.settings)
                self.builder.report.revision = previous.revision
                stage.detail = f"traffic back on {previous.revision}"
            else:
                self.builder.report.revision = None
                stage.detail = "no previous revision: the environment has no live revision"
            logs = discard_candidate(self.target, candidate, self.settings)
            if logs:
                self.logger.info("last logs of %s:\n%s", candidate.revision, logs)
        self.builder.finish(Outcome.ROLLED_BACK, reason)

    def _discard(self, candidate: Slot | None) -> None:
        if candidate is not None:
            discard_candidate(self.target, candidate, self.settings)

    def _gates_pass(self, gates: list[gate_rules.Gate], stage: object) -> bool:
        self.builder.gates(gates)
        failed = gate_rules.failed(gates)
        if not failed:
            return True
        reason = "gate failed: " + gate_rules.describe_failures(gates)
        stage.status = stage.status.FAILED  # type: ignore[attr-defined]
        stage.detail += f"; {reason}"  # type: ignore[attr-defined]
        self.builder.finish(Outcome.BLOCKED, reason)
        return False
