"""Scan stage: every scanner concurrently over the service and its image, then the outputs
(findings JSON and SARIF in the state directory, a table artifact, the critical event)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from runbook.models import Gate, ImageRef
from runbook.policy import ScanSettings
from runbook.scan import render, runner, store
from runbook.scan.models import Coverage, ScanReport
from runbook.service import Service
from runbook.settings import StackSettings


@task(name="scan_release", cache_policy=NO_CACHE)
def scan_release(service: Service, environment: str, image: ImageRef, policy: ScanSettings,
                 coverage: Coverage, settings: StackSettings) -> ScanReport:
    """Run the scanners and store their findings under the image's digest."""
    report = runner.scan_service(service.spec.name, environment, service.directory,
                                 service.dockerfile, image.by_digest, policy, coverage)
    findings_path, sarif_path = store.save(
        report, store.scan_dir(settings.state_dir, service.spec.name, image.digest)
    )
    logger = get_run_logger()
    for result in report.results:
        logger.info("%s: %s in %.2f s (%s)", result.scanner, result.status.value,
                    result.duration_s, result.detail)
    for finding in report.findings:
        logger.info("%s %s %s %s: %s", finding.severity.value, finding.tool, finding.rule_id,
                    finding.location, finding.title)
    logger.info("scan wall time %.2f s for %.2f s of scanner time; findings %s, SARIF %s",
                report.wall_time_s, report.scanner_time_s, findings_path, sarif_path)
    event = render.critical_event(report)
    if event is not None:
        emit_event(**event)
    return report


@task(name="publish_scan", cache_policy=NO_CACHE)
def publish_scan(report: ScanReport, gates: list[Gate]) -> None:
    """The findings and gate results as a Prefect table artifact."""
    create_table_artifact(
        key=f"scan-{report.service}-{report.environment}",
        table=render.table_rows(report, gates),
        description=f"scan of {report.image}",
    )

