"""Scan stage: every scanner concurrently over the service and its image, then the outputs
(findings JSON, SARIF and the SBOM in the state directory, table artifacts, the critical
event)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from runbook.models import Gate, ImageRef
from runbook.policy import ScanSettings
from runbook.scan import render, runner, sbom, store
from runbook.scan.models import Coverage, ScanOutputError, ScanReport
from runbook.service import Service
from runbook.settings import StackSettings
from runbook.store.layout import StateLayout


@task(name="scan_release", cache_policy=NO_CACHE)
def scan_release(service: Service, environment: str, image: ImageRef, policy: ScanSettings,
                 coverage: Coverage, settings: StackSettings,
                 previous_revision: str | None = None) -> ScanReport:
    """Run the scanners and store their findings and the SBOM under the image's digest;
    the SBOM is compared with the one of ``previous_revision`` (the live release)."""
    name = service.spec.name
    directory = StateLayout(settings.state_dir).scan_dir(name, image.digest)
    target = runner.ImageTarget(reference=image.by_digest, output_dir=directory,
                                options=runner.trivy_options(policy, settings.docker_host))
    report = runner.scan_service(name, environment, service.directory, service.dockerfile,
                                 target, policy, coverage)
    logger = get_run_logger()
    if report.sbom is not None:
        report.sbom.diff = _sbom_diff(report.sbom.components, settings, name,
                                      previous_revision)
        logger.info("SBOM: %d packages; %s", len(report.sbom.components),
                    report.sbom.diff.describe())
    findings_path, sarif_path = store.save(report, directory, image.revision)
    for result in report.results:
        logger.info("%s: %s in %.2f s (%s)", result.scanner, result.status.value,
                    result.duration_s, result.detail)
    for finding in report.findings:
        logger.info("%s %s %s %s: %s", finding.severity.value, finding.tool, finding.rule_id,
                    finding.location, finding.title)
    logger.info("scan wall time %.2f s for %.2f s of scanner time; findings %s, SARIF %s, "
                "SBOM %s", report.wall_time_s, report.scanner_time_s, findings_path,
                sarif_path, report.sbom.path if report.sbom else "none")
    event = render.critical_event(report)
    if event is not None:
        emit_event(**event)
    return report


def _sbom_diff(components: list[sbom.Component], settings: StackSettings, service: str,
               previous_revision: str | None) -> sbom.SbomDiff:
    if previous_revision is None:
        return sbom.SbomDiff()
    try:
        before = store.sbom_of_revision(settings.state_dir, service, previous_revision)
    except ScanOutputError as exc:
        get_run_logger().warning("SBOM of %s unreadable: %s", previous_revision, exc)
        before = None
    if before is None:
        return sbom.SbomDiff()
    return sbom.diff(before, components, previous_revision)


@task(name="publish_scan", cache_policy=NO_CACHE)
def publish_scan(report: ScanReport, gates: list[Gate]) -> None:
    """The findings and gate results, and the SBOM's packages, as Prefect table artifacts."""
    create_table_artifact(
        key=f"scan-{report.service}-{report.environment}",
        table=render.table_rows(report, gates),
        description=f"scan of {report.image}",
    )
    if report.sbom is not None:
        create_table_artifact(
            key=f"sbom-{report.service}-{report.environment}",
            table=render.sbom_rows(report.sbom),
            description=render.sbom_description(report),
        )
