"""What the deploy-target protocol adds beyond slots: each target's resource sampler and
its deploy settings for waits it makes on its own, and the task layer turning a target's
CandidateUnhealthy into the release's gate failure. No service is touched."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from runbook.errors import CandidateUnhealthy, DeployError, GateFailed, RolloutFailed
from runbook.infra import HttpService
from runbook.kube.settings import KubernetesSettings
from runbook.models import Slot
from runbook.perf.cluster_resources import PrometheusContainerSampler
from runbook.perf.resources import UnmeasuredResources
from runbook.service import ServiceSpec
from runbook.settings import StackSettings
from runbook.targets.docker import LABEL, DockerTarget, _deploy_settings
from runbook.targets.kubernetes import KubernetesTarget
from tasks.deploy import candidate_health_gate

SLOT = Slot(service="shop", environment="staging", color="green", revision="abc123",
            image="127.0.0.1:5000/shop@sha256:" + "0" * 64, address="shop:80")


def kube_target(**settings: Any) -> KubernetesTarget:
    return KubernetesTarget(None, KubernetesSettings(**settings))  # type: ignore[arg-type]


def test_kube_sampler_reads_the_slots_deployment_in_its_namespace() -> None:
    sampler = kube_target(prometheus_url="http://prom:9090",
                          namespaces={"staging": "shop-staging"}).resource_sampler(SLOT)
    assert isinstance(sampler, PrometheusContainerSampler)
    assert 'namespace="shop-staging",pod=~"shop-green-' in sampler._selector


def test_kube_sampler_uses_the_environments_prometheus_and_its_login() -> None:
    prometheus = HttpService(part="prometheus", url="https://prom.example:9090")
    sampler = kube_target(prometheus_url=prometheus.url,
                          prometheus=prometheus).resource_sampler(SLOT)
    assert isinstance(sampler, PrometheusContainerSampler)
    assert sampler._metrics._label == prometheus.label
    local = prometheus.model_copy(update={"local": True})
    anonymous = kube_target(prometheus=local).resource_sampler(SLOT)
    assert isinstance(anonymous, PrometheusContainerSampler)
    assert anonymous._metrics._label == f"prometheus {local.url}"


def test_kube_sampler_without_a_prometheus_says_so() -> None:
    sampler = kube_target().resource_sampler(SLOT)
    assert isinstance(sampler, UnmeasuredResources)
    assert "no Prometheus" in str(sampler.usage().detail)


def test_docker_restart_waits_with_the_containers_service_settings() -> None:
    spec = ServiceSpec.model_validate({
        "name": "shop", "port": 8080,
        "environments": {"staging": {"deploy": {"health_timeout_s": 7}}},
    })
    labelled = SimpleNamespace(labels={f"{LABEL}.spec": spec.model_dump_json(by_alias=True),
                                       f"{LABEL}.environment": "staging"})
    assert _deploy_settings(labelled).health_timeout_s == 7  # type: ignore[arg-type]
    unlabelled = SimpleNamespace(labels={f"{LABEL}.environment": "staging"})
    assert _deploy_settings(unlabelled).health_timeout_s == 60  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [CandidateUnhealthy, RolloutFailed])
def test_an_unhealthy_candidate_fails_the_gate_with_the_targets_words(error: type) -> None:
    with pytest.raises(GateFailed, match="never became healthy. Diagnostics: x") as failure, \
            candidate_health_gate():
        raise error("never became healthy. Diagnostics: x")
    assert isinstance(failure.value.__cause__, error)


def test_other_deploy_errors_are_not_a_gate() -> None:
    with pytest.raises(DeployError) as failure, candidate_health_gate():
        raise DeployError("blue is live; refusing to replace it")
    assert not isinstance(failure.value, GateFailed)


def test_each_target_names_the_namespace_a_check_sees() -> None:
    kube = kube_target(namespaces={"production": "shop-prod"})
    docker_target = DockerTarget(StackSettings(), None, None)  # type: ignore[arg-type]
    assert kube.namespace("production") == "shop-prod"
    assert docker_target.namespace("production") == "production"
