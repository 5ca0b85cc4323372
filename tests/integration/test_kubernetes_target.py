"""The kubernetes target driven through the real ``kubernetes`` client over HTTP against
kmock's emulator (tests/kmock_cluster.py); the test plays the controllers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.errors import DeployError, RolloutFailed, TransientError
from runbook.kube.api import KubeApi, connect
from runbook.kube.settings import KubernetesSettings
from runbook.models import Slot
from runbook.policy import DeploySettings
from runbook.service import ServiceSpec
from runbook.targets.kubernetes import KubernetesTarget
from tests.kmock_cluster import Cluster, Fault, rolled_out, stuck, stuck_on
from tests.kube_target import image, kube_target, selector_color

NS = "staging"
SPEC = ServiceSpec.model_validate({
    "name": "agent-api", "port": 8080, "health_path": "/health", "replicas": 2,
    "resources": {"memory_mb": 256, "cpus": 0.5},
})
DEPLOY = DeploySettings(health_timeout_s=5)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, KubernetesTarget]]:
    with kube_target(tmp_path, scale_down_delay_s=0) as emulated:
        yield emulated


def release(target: KubernetesTarget, revision: str) -> Slot:
    slot = target.deploy_candidate(SPEC, NS, image(revision), DEPLOY)
    target.switch(slot, DEPLOY)
    return slot


def test_first_deploy_creates_blue_previews_it_then_one_write_makes_it_live(cluster) -> None:
    emulator, target = cluster
    slot = target.deploy_candidate(SPEC, NS, image("aaa111"), DEPLOY)
    assert (slot.color, slot.revision) == ("blue", "aaa111")
    assert target.live("agent-api", NS) is None
    assert selector_color(emulator, NS, "agent-api-preview") == "blue"
    before = len(emulator.writes())
    target.switch(slot, DEPLOY)
    traffic_writes = emulator.writes()[before:]
    assert [(c.method, c.resource, c.body["metadata"]["name"]) for c in traffic_writes] == [
        ("POST", "services", "agent-api")]
    live = target.live("agent-api", NS)
    assert live is not None and live.revision == "aaa111"
    deployment = emulator.get("deployments", NS, "agent-api-blue")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image("aaa111").by_digest
    assert container["resources"]["limits"] == {"memory": "256Mi", "cpu": "500m"}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_blue_green_switch_moves_traffic_with_exactly_one_selector_patch(cluster) -> None:
    emulator, target = cluster
    release(target, "aaa111")
    candidate = target.deploy_candidate(SPEC, NS, image("bbb222"), DEPLOY)
    assert candidate.color == "green"
    assert selector_color(emulator, NS, "agent-api") == "blue"  # preview never moved traffic
    before = len(emulator.calls)
    target.switch(candidate, DEPLOY)
    active_writes = [c for c in emulator.calls[before:]
                     if c.method != "GET" and c.resource == "services"]
    assert len(active_writes) == 1
    assert active_writes[0].method == "PATCH" and active_writes[0].name == "agent-api"
    assert active_writes[0].body["spec"]["selector"] == {"app": "agent-api", "color": "green"}
    assert target.live("agent-api", NS).revision == "bbb222"
    standby = target.standby("agent-api", NS)
    assert standby is not None and standby.revision == "aaa111"
    assert emulator.get("deployments", NS, "agent-api-blue")["spec"]["replicas"] == 2


def test_rollback_after_failed_post_promotion_analysis_scales_old_color_up_first(cluster):
    emulator, target = cluster
    release(target, "aaa111")
    candidate = release(target, "bbb222")
    assert target.scale_down_standby("agent-api", NS) is True  # delay 0 in this test
    assert emulator.get("deployments", NS, "agent-api-blue")["spec"]["replicas"] == 0
    # The flow's rollback after the analysis said no: switch back, then discard.
    previous = target.standby("agent-api", NS)
    assert previous is not None and previous.revision == "aaa111"
    before = len(emulator.calls)
    target.switch(previous, DEPLOY)
    writes = [(c.method, c.resource, c.name) for c in emulator.calls[before:] if c.method != "GET"]
    assert writes == [("PATCH", "deployments", "agent-api-blue"),
                      ("PATCH", "services", "agent-api")]
    assert selector_color(emulator, NS, "agent-api") == "blue"
    target.discard(candidate)
    assert emulator.get("deployments", NS, "agent-api-green") is None
    assert target.live("agent-api", NS).revision == "aaa111"


def test_isolate_scales_both_colors_to_zero_and_keeps_the_deployments(cluster) -> None:
    emulator, target = cluster
    release(target, "aaa111")
    release(target, "bbb222")
    before = len(emulator.calls)
    isolated = target.isolate("agent-api", NS)
    assert [slot.revision for slot in isolated] == ["bbb222"]
    writes = [(c.method, c.resource, c.name, c.body) for c in emulator.calls[before:]
              if c.method != "GET"]
    assert writes == [("PATCH", "deployments", f"agent-api-{color}", {"spec": {"replicas": 0}})
                      for color in ("blue", "green")]
    for color in ("blue", "green"):  # kept, with their revision, for the investigation
        assert emulator.get("deployments", NS, f"agent-api-{color}")["spec"]["replicas"] == 0
    again = len(emulator.calls)
    assert target.isolate("agent-api", NS)[0].revision == "bbb222"  # idempotent: no writes
    assert [c for c in emulator.calls[again:] if c.method != "GET"] == []


def test_progress_deadline_fails_with_conditions_events_and_logs(cluster) -> None:
    emulator, target = cluster
    release(target, "aaa111")
    emulator.controller = stuck
    with pytest.raises(RolloutFailed) as failure:
        target.deploy_candidate(SPEC, NS, image("bad999"), DEPLOY)
    message = str(failure.value)
    assert "ProgressDeadlineExceeded" in message
    assert "CrashLoopBackOff" in message and "KeyError 'DATABASE_URL'" in message
    assert "Back-off restarting failed container" in message
    assert "registry check of" in message  # nothing listens on NO_REGISTRY
    assert selector_color(emulator, NS, "agent-api") == "blue"
    assert selector_color(emulator, NS, "agent-api-preview") == "blue"


@pytest.mark.stack
def test_diagnostics_ask_the_real_registry_for_the_image(cluster, stack_settings) -> None:
    emulator, target = cluster
    emulator.controller = stuck
    missing = image("abc123", host=stack_settings.registry)
    with pytest.raises(RolloutFailed, match="NOT found in the registry"):
        target.deploy_candidate(SPEC, NS, missing, DEPLOY)


def test_rolling_update_then_undo_on_failure(cluster) -> None:
    emulator, target = cluster
    first = target.rolling_update(SPEC, NS, image("aaa111"), DEPLOY)
    second = target.rolling_update(SPEC, NS, image("bbb222"), DEPLOY)
    assert first.color == second.color == "blue" and second.revision == "bbb222"
    assert target.live("agent-api", NS).revision == "bbb222"
    emulator.controller = stuck_on("ccc333")
    with pytest.raises(RolloutFailed, match="undone to revision bbb222"):
        target.rolling_update(SPEC, NS, image("ccc333"), DEPLOY)
    deployment = emulator.get("deployments", NS, "agent-api-blue")
    assert deployment["metadata"]["labels"]["revision"] == "bbb222"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        image("bbb222").by_digest


def test_rerun_with_the_same_digest_writes_nothing(cluster) -> None:
    emulator, target = cluster
    slot = release(target, "aaa111")
    before = len(emulator.writes())
    again = target.deploy_candidate(SPEC, NS, image("bbb222"), DEPLOY)
    target.switch(again, DEPLOY)
    middle = len(emulator.writes())
    target.deploy_candidate(SPEC, NS, image("aaa111"), DEPLOY)  # idle blue runs it already
    assert middle > before
    rerun = KubernetesTarget(target.api, target.settings)
    writes_before = len(emulator.writes())
    rerun.switch(again, DEPLOY)
    assert rerun.deploy_candidate(SPEC, NS, image("aaa111"), DEPLOY).revision == slot.revision
    assert emulator.writes()[writes_before:] == []


def test_crash_mid_deploy_converges_on_rerun_from_cluster_state(cluster) -> None:
    emulator, target = cluster
    release(target, "aaa111")

    def api_lost_after_create(cluster: Cluster, namespace: str, name: str) -> None:
        # Green is created, its rollout is going, then the run loses the API and dies.
        cluster.faults.append(Fault("GET", "deployments", 503, times=50, name=name))

    emulator.controller = api_lost_after_create
    with pytest.raises(TransientError):
        target.deploy_candidate(SPEC, NS, image("bbb222"), DEPLOY)
    assert emulator.get("deployments", NS, "agent-api-green") is not None
    emulator.faults.clear()
    emulator.controller = rolled_out
    rolled_out(emulator, NS, "agent-api-green")  # the controller finished meanwhile
    fresh = KubernetesTarget(target.api, target.settings)  # nothing carried in memory
    before = len(emulator.writes("deployments"))
    slot = fresh.deploy_candidate(SPEC, NS, image("bbb222"), DEPLOY)
    assert emulator.writes("deployments")[before:] == []  # no second create, no 409
    assert (slot.color, slot.revision) == ("green", "bbb222")
    assert selector_color(emulator, NS, "agent-api-preview") == "green"


def test_conflict_is_retried_after_a_fresh_read(cluster) -> None:
    emulator, target = cluster
    release(target, "aaa111")
    candidate = target.deploy_candidate(SPEC, NS, image("bbb222"), DEPLOY)
    emulator.faults.append(Fault("PATCH", "services", 409, name="agent-api"))
    target.switch(candidate, DEPLOY)
    patches = emulator.writes("services", "agent-api")
    assert [c.method for c in patches[-2:]] == ["PATCH", "PATCH"]
    assert selector_color(emulator, NS, "agent-api") == "green"


def test_server_errors_are_transient(cluster) -> None:
    emulator, target = cluster
    emulator.faults.append(Fault("GET", "services", 503))
    with pytest.raises(TransientError, match="503"):
        target.live("agent-api", NS)
    assert target.live("agent-api", NS) is None  # the retry succeeds


def test_forbidden_fails_fast_naming_the_permission(cluster) -> None:
    emulator, target = cluster
    candidate = target.deploy_candidate(SPEC, NS, image("aaa111"), DEPLOY)
    emulator.faults.append(Fault("POST", "services", 403, times=5))
    with pytest.raises(DeployError, match="lacks the permission 'create' on 'services' in "
                                          "namespace 'staging'") as failure:
        target.switch(candidate, DEPLOY)
    assert not isinstance(failure.value, TransientError)
    assert emulator.faults[0].times == 4  # asked once: no retry


def test_unreachable_api_is_transient(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    settings = KubernetesSettings(kubeconfig=kubeconfig, request_timeout_s=1)
    target = KubernetesTarget(KubeApi(connect(settings), 1), settings)
    with pytest.raises(TransientError, match="unreachable"):
        target.live("agent-api", NS)


def test_a_bad_first_release_is_isolated_then_discarded_and_nothing_is_live(cluster) -> None:
    # No previous revision to switch back to: the rollback takes the release off traffic
    # first; only then may the live color be deleted (a serving one never is).
    emulator, target = cluster
    slot = release(target, "aaa111")
    with pytest.raises(DeployError, match="is live; refusing to discard it"):
        target.discard(slot)

    assert [s.revision for s in target.isolate("agent-api", NS)] == ["aaa111"]
    target.discard(slot)

    assert emulator.get("deployments", NS, "agent-api-blue") is None
    assert target.live("agent-api", NS) is None
