"""Publishing secrets to the docker target: the live revision restarts in the idle color
with the new environment, the router switches atomically, the old container drains."""

from __future__ import annotations

import httpx

from runbook.adapters.http import probe
from runbook.errors import DeployError
from runbook.service import ServiceSpec
from runbook.targets.docker import DockerTarget


class DockerSecretPublisher:
    """The rotation ``Publisher`` of one service in one environment on the docker target."""

    def __init__(self, target: DockerTarget, spec: ServiceSpec, environment: str) -> None:
        self.target, self.spec, self.environment = target, spec, environment
        self.deploy = spec.policy_for(environment).deploy

    def publish(self, env: dict[str, str]) -> None:
        self.target.restart_with_env(self.spec, self.environment, env, self.deploy)

    def verify(self) -> None:
        endpoint = self.target.endpoint(self.spec.name, self.environment)
        if endpoint is None:
            raise DeployError(f"{self.spec.name}/{self.environment} has no endpoint to verify")
        url = endpoint + self.spec.health_path
        with httpx.Client() as client:
            result = probe(client, url, self.deploy.health_request_timeout_s)
        if not result.ok:
            raise DeployError(f"{self.spec.name} unhealthy after publishing: {result.detail}")

    def revoke(self, env: dict[str, str]) -> None:
        self.publish(env)
        standby = self.target.standby(self.spec.name, self.environment)
        if standby is not None:  # it still accepts the revoked value: nothing may
            self.target.retire(standby)
