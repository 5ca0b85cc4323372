"""The objects of one service in one environment, rendered from typed models (pure).

Per environment namespace: a Deployment per color (``<name>-blue``, ``<name>-green``), the
active Service ``<name>`` (its selector's ``color`` is the one atomic traffic switch) and
the preview Service ``<name>-preview`` (reaches only the candidate color).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

from pydantic import BaseModel, Field

from runbook.service import ServiceSpec

COLORS = ("blue", "green")
SERVICE_PORT = 80
CONTAINER_NAME = "app"
MANAGED_BY = {"app.kubernetes.io/managed-by": "runbook"}

# Label keys (selectors) and annotation keys (state read back from the cluster).
APP = "app"
COLOR = "color"
REVISION = "revision"
ENVIRONMENT = "runbook.io/environment"
IMAGE = "runbook.io/image"
SPEC_HASH = "runbook.io/spec-hash"
REPLICAS = "runbook.io/replicas"  # desired replicas, kept while scaled down to zero
PREVIOUS_TEMPLATE = "runbook.io/previous-template"
PREVIOUS_REVISION = "runbook.io/previous-revision"
SWITCHED_AT = "runbook.io/switched-at"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # pod-template: `kubectl rollout restart`


class ColorDeployment(BaseModel):
    """What one color of a service runs: everything its Deployment is rendered from."""

    service: str
    environment: str
    namespace: str
    color: str
    revision: str
    image: str  # repository@sha256:digest; never a tag
    replicas: int = Field(ge=0)
    port: int
    health_path: str
    memory_mb: int | None = None
    cpus: float | None = None
    progress_deadline_s: float = Field(gt=0)
    """The Deployment's progressDeadlineSeconds: the controller reports
    ProgressDeadlineExceeded after this long without progress."""
    secret_env: list[str] = Field(default_factory=list)
    """Environment variables read from the service's Secret (``<name>-secrets``), one key
    each, as the secret rotation publishes them."""

    @classmethod
    def of(cls, spec: ServiceSpec, environment: str, namespace: str, color: str,
           revision: str, image: str, progress_deadline_s: float) -> ColorDeployment:
        return cls(
            service=spec.name, environment=environment, namespace=namespace, color=color,
            revision=revision, image=image, replicas=spec.replicas, port=spec.port,
            health_path=spec.health_path, memory_mb=spec.resources.memory_mb,
            cpus=spec.resources.cpus, progress_deadline_s=progress_deadline_s,
            secret_env=[secret.env for secret in spec.secrets],
        )

    @property
    def name(self) -> str:
        return deployment_name(self.service, self.color)


def deployment_name(service: str, color: str) -> str:
    return f"{service}-{color}"


def preview_name(service: str) -> str:
    return f"{service}-preview"


def render_deployment(model: ColorDeployment) -> dict[str, Any]:
    """The Deployment of one color; ``runbook.io/spec-hash`` makes re-applying a no-op."""
    selector = {APP: model.service, COLOR: model.color}
    labels = {**selector, REVISION: model.revision, **MANAGED_BY}
    template = {
        "metadata": {"labels": dict(labels)},
        "spec": {"containers": [_container(model)]},
    }
    spec = {
        "replicas": model.replicas,
        "selector": {"matchLabels": dict(selector)},
        "progressDeadlineSeconds": math.ceil(model.progress_deadline_s),
        # A rollout never removes a ready pod before its replacement is ready.
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": template,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": model.name,
            "namespace": model.namespace,
            "labels": labels,
            "annotations": {ENVIRONMENT: model.environment, IMAGE: model.image,
                            SPEC_HASH: spec_hash(spec),
                            REPLICAS: str(model.replicas)},
        },
        "spec": spec,
    }


def secret_name(service: str) -> str:
    return f"{service}-secrets"


def render_secret(service: str, namespace: str, env: dict[str, str]) -> dict[str, Any]:
    """The service's Secret: one key per environment variable, values base64 as the API
    stores them."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": secret_name(service), "namespace": namespace,
                     "labels": {APP: service, **MANAGED_BY}},
        "data": {key: base64.b64encode(value.encode()).decode()
                 for key, value in sorted(env.items())},
    }


def render_service(service: str, namespace: str, port: int, color: str, *,
                   preview: bool) -> dict[str, Any]:
    """The active Service (``preview=False``) or the preview Service, selecting ``color``."""
    name = preview_name(service) if preview else service
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {APP: service, **MANAGED_BY}},
        "spec": {
            "type": "ClusterIP",
            "selector": {APP: service, COLOR: color},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": port,
                       "protocol": "TCP"}],
        },
    }


def render_all(spec: ServiceSpec, environment: str, namespace: str, revision: str,
               image: str, progress_deadline_s: float) -> list[dict[str, Any]]:
    """What a first blue-green release of ``image`` applies: blue, its Services."""
    color = COLORS[0]
    model = ColorDeployment.of(spec, environment, namespace, color, revision, image,
                               progress_deadline_s)
    return [
        render_deployment(model),
        render_service(spec.name, namespace, spec.port, color, preview=False),
        render_service(spec.name, namespace, spec.port, color, preview=True),
    ]


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _container(model: ColorDeployment) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": model.image,
        "ports": [{"name": "http", "containerPort": model.port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": model.health_path, "port": model.port},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
    }
    if model.secret_env:
        # Optional: a service deployed before its first rotation starts without the
        # variables, as on the docker target; the rotation's restart brings them in.
        container["env"] = [
            {"name": env, "valueFrom": {"secretKeyRef": {
                "name": secret_name(model.service), "key": env, "optional": True}}}
            for env in model.secret_env]
    resources = _resources(model.memory_mb, model.cpus)
    if resources:
        # Requests equal to limits: the scheduler reserves what the perf gates measured.
        container["resources"] = {"requests": resources, "limits": resources}
    return container


def _resources(memory_mb: int | None, cpus: float | None) -> dict[str, str]:
    resources = {}
    if memory_mb:
        resources["memory"] = f"{memory_mb}Mi"
    if cpus:
        resources["cpu"] = f"{math.ceil(cpus * 1000)}m"
    return resources
