"""Publishing secrets to the kubernetes target: the service's Secret (``<name>-secrets``, one
key per environment variable) in the environment's namespace, then a rolling restart of the
live Deployment (``kubectl rollout restart``), since variables from a Secret change only when
pods start. The Deployments read the Secret through ``secretKeyRef`` (``kube/manifests.py``).
"""

from __future__ import annotations

from typing import Any

from runbook.errors import DeployError, TransientError
from runbook.kube import manifests as m
from runbook.kube.api import Conflict
from runbook.kube.rollout import RolloutPhase
from runbook.service import ServiceSpec
from runbook.targets.kubernetes import KubernetesTarget


class KubernetesSecretPublisher:
    """The rotation ``Publisher`` of one service in one environment on a cluster."""

    def __init__(self, target: KubernetesTarget, spec: ServiceSpec, environment: str) -> None:
        self.target, self.spec, self.environment = target, spec, environment
        self.deploy = spec.policy_for(environment).deploy

    def publish(self, env: dict[str, str]) -> None:
        """Write the Secret, then restart the live pods so they read it (waits)."""
        self.write_secret(env)
        self.target.restart(self.spec.name, self.environment, self.deploy.health_timeout_s)

    def verify(self) -> None:
        """The live Deployment's rollout is done: every pod restarted with the published
        values passed its readiness probe (the service's health path)."""
        status = self.target.live_rollout(self.spec.name, self.environment)
        if status is None:
            raise DeployError(f"{self.spec.name} has nothing live in {self.environment}")
        if status.phase is not RolloutPhase.DONE:
            raise DeployError(f"{self.spec.name} not healthy after publishing: {status.message}")

    def revoke(self, env: dict[str, str]) -> None:
        """Publish ``env`` (the old values gone) and scale the standby color to zero: its pods
        started with the old values and would still accept them."""
        self.publish(env)
        standby = self.target.standby(self.spec.name, self.environment)
        if standby is not None:
            self.target.retire(standby)

    def write_secret(self, env: dict[str, str]) -> None:
        """Create or replace the Secret with exactly ``env``; nothing when it holds it already.
        Replaced whole (not merged), so a key no longer declared is gone too."""
        api, retries = self.target.api, self.target.settings.conflict_retries
        namespace = self.target.settings.namespace(self.environment)
        desired = m.render_secret(self.spec.name, namespace, env)
        name = desired["metadata"]["name"]
        for _ in range(retries + 1):
            current = api.read_secret(namespace, name)
            try:
                if current is None:
                    api.create_secret(namespace, desired)
                elif (current.get("data") or {}) != desired["data"]:
                    api.replace_secret(namespace, name, _versioned(desired, current))
                return
            except Conflict:
                continue  # written in between: read again and decide again
        raise TransientError(f"secret {name} kept changing while being published")


def _versioned(desired: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    body = {**desired, "metadata": {**desired["metadata"]}}
    body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
    return body
