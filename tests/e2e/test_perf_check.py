"""`runbook perf` on the live revision, on the local stack: the live image load-tested in
the preview slot with the perf stage's gates, nothing promoted, the live revision, its
standby and the baseline unchanged; the exit code says whether the gates passed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.models import Outcome, RunReport
from runbook.perf.check import PerfCheckReport
from runbook.settings import StackSettings
from tasks.perf import read_perf_baseline
from tests.conftest import FAST_POLICY
from tests.traffic import ContinuousClient

pytestmark = pytest.mark.stack
RUNBOOK = str(Path(sys.executable).parent / "runbook")
ENV = "staging"


def _runbook(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNBOOK, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def _deliver(service_dir: Path, tmp_path: Path, version: str) -> RunReport:
    report = tmp_path / f"release-{version}.json"
    done = _runbook("pipeline", str(service_dir), "--env", ENV, "--report", str(report),
                    "--build-arg", f"VERSION={version}")
    assert report.exists(), done.stdout + done.stderr
    result = RunReport.model_validate_json(report.read_text())
    assert (result.outcome, done.returncode) == (Outcome.RELEASED, 0), result.reason
    return result


def _perf(service_dir: Path, tmp_path: Path, name: str) -> tuple[PerfCheckReport,
                                                                   subprocess.CompletedProcess[str]]:
    report = tmp_path / f"{name}.json"
    done = _runbook("perf", str(service_dir), "--env", ENV, "--report", str(report))
    assert report.exists(), done.stdout + done.stderr
    return PerfCheckReport.model_validate_json(report.read_text()), done


def _status(service: str) -> dict[str, Any]:
    return json.loads(_runbook("status", service, "--env", ENV, timeout=60).stdout)


# The baseline comparison is evaluated, but with room for a 2-core machine shared by many
# test runs: 4 s of load measure the mechanics here, not the service's latency.
TOLERANT = {**FAST_POLICY, "thresholds": {"perf_degradation_ratio": 50.0,
                                          "perf_degradation_floor_s": 2.0}}


def test_perf_checks_the_live_revision_and_promotes_nothing(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path,
) -> None:
    service_dir = sample_service(policy=TOLERANT)
    name = str(yaml.safe_load((service_dir / "service.yaml").read_text())["name"])
    _deliver(service_dir, tmp_path, "1")
    live = _deliver(service_dir, tmp_path, "2")  # release 1 stays as the standby
    before = _status(name)
    baseline = read_perf_baseline.fn(name, ENV, stack_settings)
    assert baseline is not None and baseline.revision == live.revision

    # What the endpoint answers while the check runs: every answer, by version.
    with ContinuousClient(str(live.endpoint), pause_s=0.05, timeout_s=5) as endpoint:
        checked, done = _perf(service_dir, tmp_path, "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert checked.passed, checked.reason
    assert checked.revision == live.revision and checked.image == live.image
    assert checked.preview_url and checked.preview_url != live.endpoint
    names = {gate.name for gate in checked.gates}
    assert {"perf_avg_latency_s", "perf_error_rate", "perf_cpu_pct", "perf_memory_pct",
            "perf_baseline_avg_ratio", "perf_baseline_p95_ratio"} <= names
    assert checked.baseline_revision == live.revision
    assert checked.perf is not None and checked.perf.requests > 0
    assert "perf check passed" in done.stdout and "perf_avg_latency_s" in done.stdout

    # Nothing promoted: the endpoint answered release 2 only, the same container serves,
    # the standby is release 1 again, and the baseline is the release's own report.
    assert set(endpoint.versions) == {"2"}, endpoint.versions
    assert endpoint.dropped == [] and endpoint.app_errors == []
    after = _status(name)
    assert after["live"] == before["live"]
    assert after["standby"]["revision"] == before["standby"]["revision"]
    assert checked.standby == before["standby"]["revision"]
    assert read_perf_baseline.fn(name, ENV, stack_settings) == baseline

    # Gates that the live revision cannot pass: exit 1, still nothing moved.
    spec = yaml.safe_load((service_dir / "service.yaml").read_text())
    spec["policy"] = {**TOLERANT, "thresholds": {**TOLERANT["thresholds"],
                                                 "gate_avg_latency_s": 0.000001}}
    (service_dir / "service.yaml").write_text(yaml.safe_dump(spec))
    failed, done = _perf(service_dir, tmp_path, "failed-check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert not failed.passed
    assert "perf_avg_latency_s" in failed.reason
    assert _status(name)["live"] == before["live"]
    assert read_perf_baseline.fn(name, ENV, stack_settings) == baseline


def test_perf_without_a_live_revision_fails_and_starts_nothing(
    stack_settings: StackSettings, sample_service: Callable[..., Path], tmp_path: Path,
) -> None:
    service_dir = sample_service()
    checked, done = _perf(service_dir, tmp_path, "nothing-live")
    assert done.returncode == 1
    assert not checked.passed and checked.revision is None
    assert "no live revision" in checked.reason
    assert checked.gates == []
