"""What the base images of a build resolve to now, from the local Docker engine.

``docker build`` (``pull=False``) uses the local image of the exact name, so its id is what
the build will start from. A base not present locally is asked of its registry through the
engine (the manifest digest). A base that resolves neither way is reported as unresolved:
the revision then follows the sources and build arguments only, as before.
"""

from __future__ import annotations

import docker
import docker.errors
import requests
from pydantic import BaseModel

from runbook.adapters.docker_engine import call_engine
from runbook.errors import TransientError

RESOLVE_TIMEOUT_S = 15
"""Deadline of one engine call; a registry that does not answer must not hold the build."""
PULL_TIMEOUT_S = 300
"""Deadline of pulling a base image (hundreds of MB from a registry)."""


class BaseResolution(BaseModel):
    """The bases of one build: resolved ones by id, the rest named."""

    resolved: dict[str, str]
    """Base image name -> local image id (``sha256:...``) or registry manifest digest."""
    unresolved: list[str]
    """Bases neither present locally nor answered for by a registry."""


def resolve_bases(docker_host: str, names: list[str],
                  timeout_s: int = RESOLVE_TIMEOUT_S) -> BaseResolution:
    """Resolve every base name (local image id first, else the registry digest)."""
    if not names:
        return BaseResolution(resolved={}, unresolved=[])
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=timeout_s)
    except docker.errors.DockerException as exc:
        raise TransientError(f"Docker engine at {docker_host} unreachable: {exc}") from exc
    resolved: dict[str, str] = {}
    unresolved: list[str] = []
    try:
        for name in names:
            found = _image_id(client, name)
            if found is None:
                unresolved.append(name)
            else:
                resolved[name] = found
    finally:
        client.close()
    return BaseResolution(resolved=resolved, unresolved=unresolved)


def _image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code is not None and exc.status_code >= 500:
            raise TransientError(f"Docker engine error resolving {name}: {exc}") from exc
        return None  # e.g. an invalid reference (an unresolved $VAR): nothing to resolve
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"Docker engine unreachable resolving {name}: {exc}") from exc
    try:
        return str(client.images.get_registry_data(name).id)
    except (docker.errors.APIError, requests.ConnectionError, requests.Timeout):
        # The registry is unreachable or does not know the name: the build will say whether
        # it can use the base; the revision cannot include it.
        return None


def pull_as(docker_host: str, reference: str, local_name: str,
            timeout_s: int = PULL_TIMEOUT_S) -> str:
    """Pull ``reference`` (e.g. the base mirrored in the local registry) and tag it
    ``local_name``, the name Dockerfiles build ``FROM``; returns the local image id.

    ``docker build`` never pulls (``pull=False``), so a rebuild on a newer base needs the
    newer base under the local name first."""
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = reference, "latest"
    client = docker.DockerClient(base_url=docker_host, timeout=timeout_s)
    try:
        image = call_engine(lambda: client.images.pull(repository, tag=tag))
        call_engine(lambda: image.tag(local_name))
        return str(image.id)
    finally:
        client.close()
