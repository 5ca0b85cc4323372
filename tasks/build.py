"""Build stage: content-tagged image, built once, pushed, returned by digest."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from runbook.adapters import docker_engine
from runbook.adapters.base_images import BaseResolution, resolve_bases
from runbook.adapters.registry import Registry
from runbook.build import dockerfile_bases, prebuilt_ref
from runbook.errors import ConfigurationError
from runbook.infra import docker_auth_config, registry_for_image, resolve
from runbook.models import ImageRef
from runbook.names import BUILD_TAG
from runbook.service import Service
from runbook.settings import StackSettings
from tasks.retry import TRANSIENT_RETRIES


def _image_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    # The revision is a digest of the source and build args: same key, same image.
    return f"image-{parameters['repository']}-{parameters['revision']}"


@task(name="resolve_base_images", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def resolve_base_images(service: Service, build_args: dict[str, str],
                        settings: StackSettings) -> BaseResolution:
    """What the Dockerfile's ``FROM`` images resolve to on the local engine now (part of
    the revision, so a new base under the same name is rebuilt)."""
    names = dockerfile_bases(service.dockerfile.read_text(), build_args)
    resolution = resolve_bases(settings.docker_host, names)
    if resolution.unresolved:
        get_run_logger().warning(
            "base image(s) %s not found locally nor in a registry: the revision follows the "
            "sources and build args only, a newer base will not change it",
            resolution.unresolved)
    return resolution


@task(
    name="build_image",
    tags=[BUILD_TAG],
    cache_key_fn=_image_key,
    cache_expiration=timedelta(days=30),
    persist_result=True,
    **TRANSIENT_RETRIES,
)
def build_image(
    service: Service, build_args: dict[str, str], repository: str, revision: str,
    settings: StackSettings, deadline: float | None = None,
) -> ImageRef:
    """Build and push ``repository:revision``, unless the registry has it already.

    Args:
        deadline: Unix time by which building and pushing end, over all retries; past it
            the task fails (``DeadlinePassed``, not retried). Not part of the cache key.
    """
    logger = get_run_logger()
    docker_engine.check_deadline(deadline, f"building {repository}:{revision}")
    target = registry_for_image(settings, repository)
    registry = Registry.of(target)
    name = repository.removeprefix(f"{target.host}/")
    existing = registry.manifest_digest(name, revision)
    if existing is not None:
        logger.info("%s:%s is in the registry already; not rebuilding", repository, revision)
        return ImageRef(repository=repository, tag=revision, digest=existing)
    client = docker_engine.connect(settings.docker_host, _read_timeout(deadline))
    docker_engine.build(
        client,
        context=str(service.directory),
        dockerfile=service.spec.build.dockerfile,
        tag=f"{repository}:{revision}",
        build_args=build_args,
        on_line=logger.info,
        deadline=deadline,
    )
    digest = docker_engine.push(client, repository, revision, deadline,
                                auth_config=docker_auth_config(target))
    logger.info("pushed %s@%s", repository, digest)
    return ImageRef(repository=repository, tag=revision, digest=digest)


def _read_timeout(deadline: float | None) -> int:
    """A silent engine must not outlast the deadline by a full read timeout."""
    if deadline is None:
        return docker_engine.API_TIMEOUT_S
    return max(1, min(docker_engine.API_TIMEOUT_S, int(deadline - time.time()) + 1))


@task(name="image_in_registry", **TRANSIENT_RETRIES)
def image_in_registry(image: ImageRef, settings: StackSettings) -> bool:
    """Whether a (possibly cached) image reference still exists in the registry."""
    target = registry_for_image(settings, image.repository)
    name = image.repository.removeprefix(f"{target.host}/")
    return Registry.of(target).manifest_digest(name, image.digest) is not None


@task(name="prebuilt_image", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def prebuilt_image(reference: str, environment: str, pull: bool,
                   settings: StackSettings) -> ImageRef:
    """An image built elsewhere (``--image REPO@sha256:...``), checked to exist in the
    environment's registry; pulled onto the local engine when the run uses one (``pull``:
    tests or the docker target run it there)."""
    target = resolve(settings, environment).registry
    image = prebuilt_ref(reference, target.host)
    name = image.repository.removeprefix(f"{target.host}/")
    if Registry.of(target).manifest_digest(name, image.digest) is None:
        raise ConfigurationError(f"--image {reference}: no such manifest in {target.label}")
    if pull:
        client = docker_engine.connect(settings.docker_host)
        docker_engine.pull(client, image.by_digest, docker_auth_config(target))
    get_run_logger().info("using %s (built elsewhere) as revision %s", image.by_digest,
                          image.revision)
    return image
