"""Retries with a real fault: the registry drops the build's first call, then comes up."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client

from runbook.build import content_revision, repository
from runbook.service import load_service
from runbook.settings import StackSettings
from tasks.build import build_image

pytestmark = pytest.mark.stack
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent-api"
FIRST_CALL_DEADLINE_S = 300.0


@pytest.fixture
def late_registry(tmp_path: Path) -> Iterator[int]:
    """A port whose first connection is dropped, after which a real registry starts there:
    the build's first registry call fails however long the machine takes to get to it, and
    a retry finds the registry up."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
        f"{tmp_path / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    processes: list[subprocess.Popen[bytes]] = []

    def start_after_first_call() -> None:
        listener.settimeout(FIRST_CALL_DEADLINE_S)
        try:
            connection, _ = listener.accept()
            connection.close()  # the fault: the connection drops, nothing is answered
        except TimeoutError:
            pass  # the test then fails on run_count, saying what did not happen
        listener.close()
        processes.append(subprocess.Popen(
            [shutil.which("docker-registry") or "docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))

    starter = threading.Thread(target=start_after_first_call)
    starter.start()
    yield port
    starter.join()
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def test_push_retries_until_the_registry_is_back(
    stack_settings: StackSettings, late_registry: int, tmp_path: Path
) -> None:
    port = late_registry
    settings = stack_settings.model_copy(update={"registry_port": port})
    service = load_service(SAMPLE)
    # A revision of its own, so no cached result from another run can answer for it.
    build_args = {"VERSION": f"retry-{time.time_ns()}"}
    revision = content_revision(service, build_args)
    state = build_image(service, build_args, repository(settings.registry, "retry-probe"),
                        revision, settings, return_state=True)

    image = state.result()
    assert image.digest.startswith("sha256:")
    manifest = httpx.head(
        f"http://127.0.0.1:{port}/v2/retry-probe/manifests/{image.digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}, timeout=5,
    )
    assert manifest.status_code == 200
    with get_client(sync_client=True) as client:
        task_run = client.read_task_run(state.state_details.task_run_id)
    assert task_run.run_count >= 2  # failed on the dropped call, then built and pushed
