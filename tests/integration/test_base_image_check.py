"""Base-image update check on the real engine and local registry: a service image built on
a base is up to date until a new base is pushed under the same tag."""

from __future__ import annotations

import io
import tarfile
import uuid

import docker
import pytest

from runbook.adapters.registry import Registry
from runbook.ops.base_image import base_image_status
from runbook.settings import StackSettings
from tasks.ops import resolve_image

pytestmark = pytest.mark.stack


def context(dockerfile: str, content: str) -> io.BytesIO:
    """A build context with a Dockerfile and one small file (bytes, ~1 s to build)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("f", content.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build_and_push(client: docker.DockerClient, reference: str, tag: str, dockerfile: str,
                   content: str) -> None:
    client.images.build(fileobj=context(dockerfile, content), custom_context=True,
                        tag=f"{reference}:{tag}", rm=True)
    client.images.push(reference, tag=tag)


def test_a_new_base_digest_makes_the_deployed_image_stale(stack_settings: StackSettings) -> None:
    client = docker.DockerClient(base_url=stack_settings.docker_host, timeout=60)
    suffix = uuid.uuid4().hex[:6]
    base = f"{stack_settings.registry}/ops-base-{suffix}"
    app = f"{stack_settings.registry}/ops-app-{suffix}"
    registry = Registry(stack_settings.registry)
    try:
        build_and_push(client, base, "1", "FROM scratch\nCOPY f /base\n", "base v1")
        build_and_push(client, app, "r1", f"FROM {base}:1\nCOPY f /app\n", "app")
        current_base = resolve_image.fn(f"{base}:1", stack_settings)
        deployed = resolve_image.fn(f"{app}:r1", stack_settings)
        assert current_base is not None and deployed is not None
        assert len(deployed.layers) == len(current_base.layers) + 1
        assert base_image_status("app", "staging", deployed, current_base).up_to_date

        # A "new upstream base" under the same tag: the deployed image is now behind it.
        build_and_push(client, base, "1", "FROM scratch\nCOPY f /base\n", "base v2")
        newer = resolve_image.fn(f"{base}:1", stack_settings)
        assert newer is not None and newer.digest != current_base.digest
        status = base_image_status("app", "staging", deployed, newer)
        assert not status.up_to_date and status.base_digest == newer.digest
        assert resolve_image.fn(f"{base}:missing", stack_settings) is None
    finally:
        for reference, tag in ((app, "r1"), (base, "1")):
            name = reference.removeprefix(f"{stack_settings.registry}/")
            digest = registry.manifest_digest(name, tag)
            if digest is not None:
                registry.delete_manifest(name, digest)
            client.images.remove(f"{reference}:{tag}", force=True)
