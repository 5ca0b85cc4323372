"""The performance check of what runs: the live revision load-tested in the preview slot.

The nightly run of a service that did not change has nothing to release, so the
pipeline stops at "already live" and load-tests nothing. This flow load-tests the live
revision itself: it starts the live image again in the idle color (the preview slot),
runs the perf stage against the preview URL (same gates, same artifacts, the same
baseline comparison, which it never replaces), promotes nothing, and puts the rollback
standby it displaced back in that color. It holds the service/environment's deploy slot
throughout, so it never races a release.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows.locks import one_deploy_at_a_time
from runbook import gates as gate_rules
from runbook.config import load_config
from runbook.errors import GateFailed
from runbook.models import Environment, Gate, ImageRef, Slot, TargetKind
from runbook.names import GateName
from runbook.perf.check import PerfCheckReport, check_alert
from runbook.perf.degradation import judge_degradation
from runbook.service import Service, load_service
from runbook.settings_root import RunbookSettings
from tasks.deploy import (
    deploy_candidate,
    discard_candidate,
    read_live_slot,
    read_standby_slot,
    restore_standby,
)
from tasks.notify import publish_alert
from tasks.perf import (
    emit_perf_degraded,
    load_test_preview,
    publish_perf_results,
    read_perf_baseline,
)
from tasks.perf_check import publish_perf_check


@flow(name="perf-check", log_prints=True)
def perf_check(
    service_dir: str,
    environment: Environment = Environment.STAGING,
    target: TargetKind | None = None,
    report_path: str | None = None,
    config: str | None = None,
) -> PerfCheckReport | State[PerfCheckReport]:
    """Load-test the revision that serves an environment, in its preview slot, with the
    perf stage's gates against the baseline; promote nothing, replace no baseline.

    Args:
        service_dir: The service's directory (its service.yaml gives the perf settings,
            traffic paths or locustfile, and thresholds).
        environment: The environment whose live revision is load-tested.
        target: Where the environment runs (docker or kubernetes); unset: the
            environment's ``target`` in ``runbook.yaml``, else docker.
        report_path: Also write the check's report (JSON) here.
        config: Path of the ``runbook.yaml`` on the worker; unset: ``$RUNBOOK_CONFIG``,
            else the ``runbook.yaml`` of its checkout, else none (the local stack).
    """
    service = load_service(service_dir)
    env = Environment(environment).value
    settings = RunbookSettings.load(config)
    check = _Check(service, env, chosen_target(env, target, config), settings)
    report = check.run()
    publish_perf_check(report, report_path)
    alert = check_alert(report)
    if alert is not None:
        # Undeliverable alerts wait in the outbox; delivery never changes the verdict.
        publish_alert(alert, settings, return_state=True)
    if not report.passed:
        return Failed(message=f"perf check failed: {report.reason}", data=report)
    return report


def chosen_target(environment: str, explicit: TargetKind | str | None,
                  config: str | None = None) -> TargetKind:
    """``explicit``, else the environment's ``target`` in ``runbook.yaml``, else docker.
    The file is read either way: an invalid one is bad input, before anything starts."""
    configured = load_config(Path(config) if config else None).environment(environment).target
    return TargetKind(explicit or configured or TargetKind.DOCKER.value)


def _image_of(slot: Slot) -> ImageRef:
    repository, _, digest = slot.image.partition("@")
    return ImageRef(repository=repository, tag=slot.revision, digest=digest)


class _Check:
    """One check's sequence; every step a task, every decision a pure function."""

    def __init__(self, service: Service, environment: str, target: TargetKind,
                 settings: RunbookSettings) -> None:
        self.service = service
        self.spec = service.spec
        self.env = environment
        self.target = target
        self.settings = settings
        self.policy = self.spec.policy_for(environment)
        self.report = PerfCheckReport(service=self.spec.name, environment=environment,
                                      target=target.value,
                                      flow_run_url=flow_run.get_flow_run_ui_url())
        self.logger = get_run_logger()

    def run(self) -> PerfCheckReport:
        try:
            with contextlib.ExitStack() as deploy_slot:
                if self._live() is None:
                    return self._nothing_live()
                deploy_slot.enter_context(one_deploy_at_a_time(
                    self.spec.name, self.env, self.policy.deploy.lock_timeout_s,
                    self.settings.stack))
                # Again under the slot: a release that held it may have changed what is live.
                live = self._live()
                if live is None:
                    return self._nothing_live()
                self._check(live)
                return self.report.concluded()
        except Exception as exc:
            self.logger.exception("perf check failed")
            return self.report.concluded(f"{type(exc).__name__}: {exc}")

    def _live(self) -> Slot | None:
        live, _ = read_live_slot(self.target, self.spec.name, self.env, self.settings)
        if live is not None:
            self.report.revision, self.report.image = live.revision, live.image
        return live

    def _nothing_live(self) -> PerfCheckReport:
        return self.report.concluded(
            f"{self.spec.name} has no live revision in {self.env}: deliver it first")

    def _check(self, live: Slot) -> None:
        """The live image in the idle color, the load test, then the color given back."""
        standby = read_standby_slot(self.target, self.spec.name, self.env, self.settings)
        self.report.standby = standby.revision if standby else None
        try:
            candidate, preview_url = deploy_candidate(
                self.target, self.spec, self.env, _image_of(live), self.policy.deploy,
                self.settings)
            self.report.preview_url = preview_url
            try:
                self._load_test(candidate, preview_url)
            finally:
                discard_candidate(self.target, candidate, self.settings)
        except GateFailed as exc:
            self.report.gates = [Gate(name=GateName.CANDIDATE_HEALTH, passed=False,
                                      value="unhealthy", threshold="healthy", detail=str(exc))]
        finally:
            if standby is not None:
                restore_standby(self.target, self.spec, self.env, _image_of(standby),
                                self.policy.deploy, self.settings)

    def _load_test(self, candidate: Slot, preview_url: str) -> None:
        """The pipeline's perf stage, minus recording the report: the baseline is the
        released revision's latest report, so recording one would replace it."""
        perf = load_test_preview(self.target, candidate, preview_url, self.service,
                                 self.policy.perf, self.settings)
        baseline = read_perf_baseline(self.spec.name, self.env, self.settings.stack)
        degradation = judge_degradation(
            perf, baseline.report if baseline else None,
            baseline.revision if baseline else None, self.policy.thresholds)
        gates = gate_rules.perf_gates(perf, self.policy.thresholds,
                                      self.policy.perf.required_rps, degradation)
        publish_perf_results(self.spec.name, self.env, candidate.revision, perf, baseline,
                             degradation, gates, self.settings.stack)
        if degradation.critical:
            emit_perf_degraded(self.spec.name, self.env, candidate.revision, degradation)
        self.report.perf, self.report.gates = perf, gates
        self.report.baseline_revision = degradation.baseline_revision
