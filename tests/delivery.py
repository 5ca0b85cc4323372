"""Delivering a service the way a user does, for the end-to-end tests: `runbook pipeline`
in a subprocess, its JSON report, and what the endpoint serves afterwards."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from runbook.models import RunReport

RUNBOOK = str(Path(sys.executable).parent / "runbook")
PIPELINE_TIMEOUT_S = 600


def deliver(service_dir: Path, tmp_path: Path, *build_args: str,
            strategy: str = "blue-green") -> tuple[RunReport, int]:
    """Run `runbook pipeline` as a user would; the report and the exit code."""
    report_path = tmp_path / f"report-{time.monotonic_ns()}.json"
    command = [RUNBOOK, "pipeline", str(service_dir), "--env", "staging",
               "--strategy", strategy, "--report", str(report_path)]
    for arg in build_args:
        command += ["--build-arg", arg]
    completed = subprocess.run(command, capture_output=True, text=True,
                               timeout=PIPELINE_TIMEOUT_S, check=False)
    assert report_path.exists(), completed.stdout + completed.stderr
    return RunReport.model_validate_json(report_path.read_text()), completed.returncode


def runbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNBOOK, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def service_name(service_dir: Path) -> str:
    return str(yaml.safe_load((service_dir / "service.yaml").read_text())["name"])


def version_at(endpoint: str) -> str:
    return str(httpx.get(endpoint + "/", timeout=5).json()["version"])
