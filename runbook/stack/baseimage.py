"""The Python base image that service Dockerfiles build ``FROM``, present under its usual name.

``docker build`` (legacy builder) uses a local image of the exact name without pulling. Where
Docker Hub is reachable that is the real image; where it is not (this kind of machine), an
equivalent is made from Debian packages and kept in the local registry for the next engine.

Where it comes from, first that works:

1. already present locally;
2. the local registry, as ``{registry}/{base_image}`` (made earlier by any stack);
3. a normal pull (Docker Hub), with a short deadline;
4. ``debootstrap`` of a minimal Debian with ``python3``, imported as an image.

After 3 and 4 the image is pushed to the local registry so that step 2 finds it next time.
This module also makes the stack's ``base-image`` row (after ``up`` and for ``status``);
step 4 is :mod:`runbook.stack.debootstrap`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import docker
from docker.errors import DockerException, ImageNotFound

from runbook.errors import RunbookError, TransientError
from runbook.settings import StackSettings
from runbook.stack.debootstrap import RECIPE, RECIPE_LABEL, SOURCE_LABEL, build_with_debootstrap
from runbook.stack.images import explain, local_image_id, require_local, split_reference
from runbook.stack.probes import DOCKER_PING_TIMEOUT_S, docker_client
from runbook.stack.records import Action, ComponentStatus, ProgressCallback, ignore_progress

REGISTRY_PULL_DEADLINE_S = 300.0
UPSTREAM_PULL_DEADLINE_S = 120.0
PUSH_DEADLINE_S = 300.0


@dataclass(frozen=True)
class ProvidedImage:
    """The local base image and how it was obtained."""

    image_id: str
    source: str
    obtained: bool  # False when it was present locally already


def provide_base_image(
    settings: StackSettings,
    client: docker.DockerClient,
    on_progress: ProgressCallback | None = None,
) -> ProvidedImage:
    """Make ``settings.base_image`` exist locally under that exact name; say how it was
    obtained."""
    report = on_progress or ignore_progress
    name = settings.base_image
    present = local_image_id(client, name)
    if present is not None and not outdated(client, name):
        return ProvidedImage(present, "present locally", obtained=False)
    if present is not None:
        report(f"{name} was built to an older recipe; rebuilding it as {RECIPE!r}")

    mirrored = mirror_reference(settings)
    report(f"looking for {mirrored} in the local registry…")
    try:
        _pull(client, mirrored, REGISTRY_PULL_DEADLINE_S)
        if outdated(client, mirrored):
            raise TransientError(f"{mirrored} was built to an older recipe")
        image_id = _tag(client, mirrored, name)
        return ProvidedImage(image_id, f"pulled from the local registry ({mirrored})", True)
    except TransientError as exc:
        report(f"not in the local registry: {exc}")

    report(f"pulling {name}…")
    try:
        _pull(client, name, UPSTREAM_PULL_DEADLINE_S)
        image_id = require_local(client, name)
        pushed = _push_to_local_registry(client, name, mirrored, report)
        return ProvidedImage(image_id, f"pulled {name}; {pushed}", True)
    except TransientError as exc:
        report(f"cannot pull {name}: {exc}")

    started = time.monotonic()
    image_id, built_from = build_with_debootstrap(settings, client, report)
    pushed = _push_to_local_registry(client, name, mirrored, report)
    took = time.monotonic() - started
    return ProvidedImage(image_id, f"{built_from} in {took:.0f} s; {pushed}", True)


def mirror_reference(settings: StackSettings) -> str:
    """Where the local registry keeps the base image."""
    return f"{settings.registry}/{settings.base_image}"


def outdated(client: docker.DockerClient, name: str) -> bool:
    """True for an image runbook built (it carries SOURCE_LABEL) to another recipe than
    RECIPE; an image from elsewhere (Docker Hub's python) is never ours to rebuild."""
    try:
        labels = client.images.get(name).labels or {}
    except ImageNotFound:
        return False
    return SOURCE_LABEL in labels and labels.get(RECIPE_LABEL) != RECIPE


def describe_local_image(client: docker.DockerClient, name: str) -> str | None:
    """One line about the local image of that name (its origin when we made it), or None."""
    try:
        image = client.images.get(name)
    except ImageNotFound:
        return None
    labels = image.labels or {}
    origin = labels.get(SOURCE_LABEL)
    short_id = str(image.id)[:19]
    return f"present locally ({short_id}, {origin})" if origin else f"present locally ({short_id})"


# --------------------------------------------------------------------------------------------
# Registry transfers
# --------------------------------------------------------------------------------------------


def _pull(client: docker.DockerClient, reference: str, deadline_s: float) -> None:
    _transfer(client, "pull", reference, deadline_s)


def _push(client: docker.DockerClient, reference: str, deadline_s: float) -> None:
    _transfer(client, "push", reference, deadline_s)


def _transfer(
    client: docker.DockerClient,
    direction: Literal["pull", "push"],
    reference: str,
    deadline_s: float,
) -> None:
    repository, tag = split_reference(reference)
    start = client.api.pull if direction == "pull" else client.api.push
    try:
        events = start(repository, tag=tag, stream=True, decode=True)
        _follow(events, f"{direction} {reference}", deadline_s)
    except DockerException as exc:
        raise TransientError(f"{direction} {reference}: {explain(exc)}") from exc


def _follow(events: Iterable[dict[str, Any]], what: str, deadline_s: float) -> None:
    """Read a pull/push progress stream; errors arrive in the stream, not as HTTP codes."""
    deadline = time.monotonic() + deadline_s
    for event in events:
        if "error" in event:
            raise TransientError(f"{what}: {event['error']}")
        # The engine sends progress at least every few seconds while it works.
        if time.monotonic() > deadline:
            raise TransientError(f"{what}: not done within {deadline_s:.0f} s")


def _tag(client: docker.DockerClient, source: str, target: str) -> str:
    repository, tag = split_reference(target)
    try:
        client.api.tag(source, repository, tag=tag, force=True)
    except DockerException as exc:
        raise TransientError(f"tag {source} as {target}: {explain(exc)}") from exc
    return require_local(client, target)


def _push_to_local_registry(
    client: docker.DockerClient, name: str, mirrored: str, report: ProgressCallback
) -> str:
    """Push for the next engine; a failure here does not undo the local image."""
    report(f"pushing {mirrored}…")
    try:
        _tag(client, name, mirrored)
        _push(client, mirrored, PUSH_DEADLINE_S)
    except TransientError as exc:
        return f"not pushed to the local registry: {exc}"
    return f"pushed as {mirrored}"


# --------------------------------------------------------------------------------------------
# The stack's base-image row
# --------------------------------------------------------------------------------------------


def provide_for_stack(
    settings: StackSettings, statuses: dict[str, ComponentStatus], report: ProgressCallback
) -> ComponentStatus:
    """Obtain the base image during ``up`` (it needs the engine and the registry only)."""
    def failed(detail: str) -> ComponentStatus:
        return ComponentStatus(
            name="base-image", url=settings.base_image, healthy=False, action="failed",
            detail=detail,
        )

    for needed in ("docker", "registry"):
        if not statuses[needed].healthy:
            return failed(f"skipped: {needed} is not healthy")
    try:
        client = docker_client(settings)
        try:
            provided = provide_base_image(settings, client, on_progress=report)
        finally:
            client.close()
    except (RunbookError, DockerException, OSError, subprocess.SubprocessError) as exc:
        return failed(str(exc))
    action: Action = "started" if provided.obtained else "already running"
    return ComponentStatus(
        name="base-image", url=settings.base_image, healthy=True, action=action,
        detail=f"{provided.source} ({provided.image_id[:19]})",
    )


def current_status(settings: StackSettings) -> ComponentStatus:
    """The base-image row of ``status``: present locally or not; changes nothing."""
    def result(healthy: bool, detail: str) -> ComponentStatus:
        action: Action = "already running" if healthy else "not running"
        return ComponentStatus(
            name="base-image", url=settings.base_image, healthy=healthy, action=action,
            detail=detail,
        )

    try:
        client = docker_client(settings, timeout=DOCKER_PING_TIMEOUT_S)
    except TransientError:
        return result(False, "unknown: the Docker engine is not running")
    try:
        found = describe_local_image(client, settings.base_image)
    except (DockerException, OSError) as exc:
        return result(False, f"Docker engine: {exc}")
    finally:
        client.close()
    if found is None:
        return result(False, "not present locally; `runbook stack up` provides it")
    return result(True, found)
