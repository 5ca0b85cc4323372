"""The scheduled ``tidy`` flow on the local Prefect server, against kmock: it scales the
standby down under the deploy slot, and skips a service/environment whose slot is busy."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from flows.locks import deploy_limit_name, ensure_limit
from flows.maintenance import tidy
from runbook.kube.api import KubeApi, connect
from runbook.kube.settings import KubernetesSettings
from runbook.models import ImageRef
from runbook.policy import DeploySettings
from runbook.service import ServiceSpec
from runbook.settings import StackSettings
from runbook.targets.kubernetes import KubernetesTarget
from tests.kmock_cluster import Cluster, rolled_out, serve

pytestmark = pytest.mark.stack
NS = "staging"


@pytest.fixture
def released(stack_settings: StackSettings, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Cluster, str]]:
    """Two releases of a uniquely named service on kmock; the flow reaches the same cluster
    through ``RUNBOOK_K8S_*`` with no keep-delay."""
    name = f"tidy-{uuid.uuid4().hex[:6]}"
    spec = ServiceSpec.model_validate({"name": name, "port": 8080, "health_path": "/health"})
    with serve(tmp_path) as (emulator, kubeconfig):
        emulator.controller = rolled_out
        monkeypatch.setenv("RUNBOOK_K8S_KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("RUNBOOK_K8S_SCALE_DOWN_DELAY_S", "0")
        settings = KubernetesSettings(poll_interval_s=0.02)
        target = KubernetesTarget(KubeApi(connect(settings), 5), settings)
        for revision in ("aaa111", "bbb222"):
            image = ImageRef(repository=f"127.0.0.1:9/{name}", tag=revision,
                             digest="sha256:" + revision.ljust(64, "0"))
            deploy = DeploySettings(health_timeout_s=5)
            target.switch(target.deploy_candidate(spec, NS, image, deploy), deploy)
        yield emulator, name
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_global_concurrency_limit_by_name(deploy_limit_name(name, NS))


def test_tidy_flow_scales_the_standby_down(released: tuple[Cluster, str]) -> None:
    emulator, name = released

    done = tidy(services=[name], environments=[NS], target="kubernetes")

    assert list(done) == [f"{name}/{NS}"] and len(done[f"{name}/{NS}"]) == 1
    assert emulator.get("deployments", NS, f"{name}-blue")["spec"]["replicas"] == 0


def test_tidy_flow_skips_what_a_deploy_holds(released: tuple[Cluster, str]) -> None:
    emulator, name = released

    limit = deploy_limit_name(name, NS)
    ensure_limit(limit)
    with concurrency(limit, occupy=1, timeout_seconds=30, strict=True):  # a deploy runs
        done = tidy(services=[name], environments=[NS], target="kubernetes", slot_wait_s=1)

    assert done == {}
    assert emulator.get("deployments", NS, f"{name}-blue")["spec"]["replicas"] == 1
