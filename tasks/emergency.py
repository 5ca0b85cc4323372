"""Emergency procedures' record: the result as a Prefect markdown artifact."""

from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from runbook.emergency import EmergencyResult, to_markdown


@task(name="publish_emergency_result", cache_policy=NO_CACHE)
def publish_emergency_result(result: EmergencyResult) -> None:
    # Artifact keys allow only lowercase letters, digits and dashes.
    key = re.sub(r"[^a-z0-9-]", "-", f"emergency-{result.procedure.value}-{result.service}-"
                                     f"{result.environment}".lower())
    create_markdown_artifact(
        key=key,
        markdown=to_markdown(result),
        description=f"{result.service}/{result.environment}: {result.status.value}",
    )
