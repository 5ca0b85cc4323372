"""How runbook reaches a cluster and paces its waits (``RUNBOOK_K8S_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from runbook.infra import EnvironmentInfra, HttpService


class KubernetesSettings(BaseSettings):
    """Connection and pacing of the kubernetes target; thresholds stay in the policy."""

    model_config = SettingsConfigDict(env_prefix="RUNBOOK_K8S_")

    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig file; unset: $KUBECONFIG or ~/.kube/config if present, "
        "else the in-cluster service account (the Prefect worker's pod).",
    )
    context: str | None = Field(default=None, description="Kubeconfig context; unset: current.")
    namespaces: dict[str, str] = Field(
        default={"staging": "staging", "production": "production"},
        description="Namespace of each environment (JSON in the environment variable).",
    )
    cluster_domain: str = Field(
        default="cluster.local", description="DNS suffix of Services, for endpoint URLs."
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one API request (connect and read)."
    )
    poll_interval_s: float = Field(
        default=2.0, gt=0, description="Time between two reads of a rollout's status."
    )
    scale_down_delay_s: float = Field(
        default=30.0, ge=0,
        description="How long the previous color keeps its replicas after the switch, so an "
        "early rollback needs no pod start (runbook: 30 s).",
    )
    conflict_retries: int = Field(
        default=3, ge=0, description="Re-reads after a 409 before giving up (as transient)."
    )
    prometheus_url: str | None = Field(
        default=None,
        description="The cluster's Prometheus (cAdvisor and kube-state-metrics series) for "
        "the perf stage's CPU and memory; unset: the local stack's Prometheus.",
    )
    log_tail_lines: int = Field(default=30, ge=1, description="Pod log lines in diagnostics.")
    event_limit: int = Field(default=20, ge=1, description="Most recent Events in diagnostics.")
    registry_scheme: str = Field(
        default="http", description="Scheme of the image registry's HTTP API v2."
    )

    registry: HttpService | None = Field(
        default=None, exclude=True,
        description="The environment's registry from runbook.yaml (login, CA) for the "
        "diagnostics' image check; unset: anonymous, registry_scheme.",
    )

    prometheus: HttpService | None = Field(
        default=None, exclude=True,
        description="The environment's Prometheus from runbook.yaml (login, CA; or the local "
        "stack's) for the perf stage's CPU and memory; unset: prometheus_url, anonymous.",
    )

    def namespace(self, environment: str) -> str:
        """The namespace an environment's objects live in."""
        return self.namespaces.get(environment, environment)

    def for_environment(self, infra: EnvironmentInfra) -> KubernetesSettings:
        """These settings with what ``runbook.yaml`` says of the environment on top:
        its kubeconfig, context, namespace, registry and (when not the local stack's)
        Prometheus."""
        base = self
        given = infra.kubernetes
        changes: dict[str, object] = {"registry": infra.registry,
                                      "prometheus": infra.prometheus}
        if given.kubeconfig is not None:
            changes["kubeconfig"] = given.kubeconfig
        if given.context is not None:
            changes["context"] = given.context
        if given.namespace is not None:
            changes["namespaces"] = {**base.namespaces, infra.environment: given.namespace}
        if not infra.prometheus.local:
            changes["prometheus_url"] = infra.prometheus.url
        return base.model_copy(update=changes)
