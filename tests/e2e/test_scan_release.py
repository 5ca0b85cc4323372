"""The scan stage in the whole pipeline: the sample service passes; a copy with a planted
secret ends `blocked`, no traffic moves, and the secret value is in no output of the run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)

from runbook.models import Outcome
from runbook.settings import StackSettings
from runbook.store.layout import StateLayout
from runbook_cli.exit_codes import ExitCode
from tests.delivery import deliver

pytestmark = pytest.mark.stack
PLANTED_SECRET = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key


def test_planted_secret_blocks_release_and_leaks_nowhere(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path
) -> None:
    service = sample_service()
    good, code = deliver(service, tmp_path, "VERSION=1")
    assert (good.outcome, code) == (Outcome.RELEASED, 0), good.reason
    assert {s.name: s.status.value for s in good.stages}["scan"] == "passed"
    warned = {g.name for g in good.gates if g.warning}
    assert "scanners_available" in warned  # Trivy has no vulnerability database here
    assert {g.name: g for g in good.gates}["coverage_pct"].passed

    (service / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{PLANTED_SECRET}"\n')
    bad, code = deliver(service, tmp_path, "VERSION=2")
    assert (bad.outcome, code) == (Outcome.BLOCKED, ExitCode.BLOCKED)
    assert {g.name for g in bad.gates if not g.passed} == {"scan_severity", "scan_secrets"}
    assert "promote" not in {s.name for s in bad.stages}
    assert "preview" not in {s.name for s in bad.stages}
    assert bad.revision == good.revision
    assert httpx.get(str(good.endpoint) + "/", timeout=5).json()["version"] == "1"

    digest = str(bad.image).rsplit("@", 1)[1]
    scan_dir = StateLayout(stack_settings.state_dir).scan_dir(bad.service, digest)
    findings = json.loads((scan_dir / "findings.json").read_text())
    assert [f["location"] for r in findings["results"] for f in r["findings"]
            if f["tool"] == "detect-secrets"] == ["settings.py:1"]
    outputs = {
        "report": bad.model_dump_json(),
        "findings.json": (scan_dir / "findings.json").read_text(),
        "scan.sarif": (scan_dir / "scan.sarif").read_text(),
        **_run_logs_and_artifacts(bad.flow_run_url),
    }
    assert [name for name, text in outputs.items() if PLANTED_SECRET in text] == []
    assert "aws-access-key" in outputs["logs"]  # the finding is logged, its value is not


def _run_logs_and_artifacts(flow_run_url: str | None) -> dict[str, str]:
    flow_run_id = str(flow_run_url).rstrip("/").rsplit("/", 1)[-1]
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert artifacts, "the run published no artifact"
    return {"logs": "\n".join(log.message for log in logs),
            "artifacts": "\n".join(json.dumps(a.data) for a in artifacts)}
