"""What CI does: a process worker serves the pool, `prefect deployment run pipeline/staging
--watch` waits for the run and exits 0 on a release, non-zero otherwise."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runbook.models import Outcome, RunReport
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
PREFECT = str(REPO / ".venv" / "bin" / "prefect")


@pytest.fixture
def prefect_env(stack_settings: StackSettings) -> dict[str, str]:
    # The server the in-process client uses (conftest: the stack's unless PREFECT_API_URL).
    return {**os.environ, "PREFECT_API_URL": os.environ["PREFECT_API_URL"]}


@pytest.fixture
def worker(prefect_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The staging deployment registered and one process worker polling its pool."""
    for command in (["work-pool", "create", "runbook-local", "--type", "process",
                     "--overwrite"], ["deploy", "--name", "staging"]):
        subprocess.run([PREFECT, "--no-prompt", *command], cwd=REPO, env=prefect_env,
                       check=True, capture_output=True, timeout=120)
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "runbook-local", "--type", "process",
         "--limit", "1"],
        cwd=REPO, env={**prefect_env, "PREFECT_WORKER_QUERY_SECONDS": "2"},
        stdout=log, stderr=subprocess.STDOUT)
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _run_and_watch(env: dict[str, str], *params: str) -> subprocess.CompletedProcess[str]:
    args = [arg for param in params for arg in ("-p", param)]
    return subprocess.run(
        [PREFECT, "deployment", "run", "pipeline/staging", *args, "--watch",
         "--watch-interval", "2", "--watch-timeout", "480"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540, check=False)


def test_watch_exits_zero_on_release_and_non_zero_otherwise(
    worker: subprocess.Popen[bytes], prefect_env: dict[str, str],
    sample_service: Callable[..., Path], tmp_path: Path,
) -> None:
    report_path = tmp_path / "report.json"
    released = _run_and_watch(prefect_env, f"service_dir={sample_service()}",
                              f"report_path={report_path}")
    assert released.returncode == 0, released.stdout[-3000:]
    assert RunReport.model_validate_json(report_path.read_text()).outcome is Outcome.RELEASED

    missing = _run_and_watch(prefect_env, f"service_dir={tmp_path / 'no-such-service'}")
    assert missing.returncode != 0
    assert "Failed" in missing.stdout or "failed" in missing.stdout
    assert worker.poll() is None, "the worker died"
