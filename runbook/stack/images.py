"""Small helpers over the Docker engine's local images that the base-image steps share:
splitting a reference, a local image's id, and the engine's own error text."""

from __future__ import annotations

import docker
from docker.errors import DockerException, ImageNotFound
from docker.utils import parse_repository_tag

from runbook.errors import TransientError


def split_reference(reference: str) -> tuple[str, str]:
    repository, tag = parse_repository_tag(reference)
    return repository, tag or "latest"


def local_image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str(client.images.get(name).id)
    except ImageNotFound:
        return None


def require_local(client: docker.DockerClient, name: str) -> str:
    image_id = local_image_id(client, name)
    if image_id is None:
        raise TransientError(f"{name} is not present locally after it was obtained")
    return image_id


def explain(exc: DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)
