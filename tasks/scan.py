"""Scan stage (skeleton): Dockerfile lint with hadolint."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runbook.adapters import hadolint
from runbook.models import Finding


@task(name="lint_dockerfile", cache_policy=NO_CACHE)
def lint_dockerfile(dockerfile: Path) -> list[Finding]:
    findings = hadolint.lint(dockerfile)
    logger = get_run_logger()
    for finding in findings:
        logger.info("%s %s %s: %s", finding.severity, finding.rule_id, finding.location,
                    finding.title)
    return findings
