"""Registry cleanup on the real local registry: deployed and standby revisions and the
newest tags survive, older manifests are deleted through the Registry HTTP API v2."""

from __future__ import annotations

import io
import tarfile
import time
import uuid

import docker
import pytest
from prefect.logging import disable_run_logger

from runbook.adapters.registry import Registry
from runbook.ops.policy import CleanupSettings
from runbook.settings import StackSettings
from tasks.ops import apply_registry_cleanup, plan_registry_cleanup

pytestmark = pytest.mark.stack


def scratch_context(content: str) -> io.BytesIO:
    """A build context of a FROM-scratch image holding one small file (~bytes, ~1 s)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY f /f\n"),
                           ("f", content.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_cleanup_keeps_deployed_standby_and_newest(stack_settings: StackSettings) -> None:
    client = docker.DockerClient(base_url=stack_settings.docker_host, timeout=60)
    repository = f"ops-cleanup-{uuid.uuid4().hex[:6]}"
    reference = f"{stack_settings.registry}/{repository}"
    tags = ["r1", "r2", "r3", "r4", "r5"]
    for tag in tags:  # oldest first: image creation times order the tags
        client.images.build(fileobj=scratch_context(f"{repository} {tag}"),
                            custom_context=True, tag=f"{reference}:{tag}", rm=True)
        client.images.push(reference, tag=tag)
        time.sleep(1.1)  # distinct creation seconds whatever the engine's precision
    registry = Registry(stack_settings.registry)
    try:
        # r1 live, r2 standby (kept for rollback); keep the newest two on top.
        plan = plan_registry_cleanup.fn(repository, ["r1", "r2"], CleanupSettings(keep_last=2),
                                        stack_settings)
        assert (plan.keep, plan.delete_tags) == (["r1", "r2", "r4", "r5"], ["r3"])
        assert plan.bytes_freed > 0
        with disable_run_logger():
            assert apply_registry_cleanup.fn(plan, stack_settings) == 1
        assert sorted(registry.tags(repository)) == ["r1", "r2", "r4", "r5"]
        assert registry.manifest_digest(repository, "r3") is None
        assert registry.manifest_digest(repository, "r1") is not None
        again = plan_registry_cleanup.fn(repository, ["r1", "r2"], CleanupSettings(keep_last=2),
                                         stack_settings)
        assert again.delete_digests == []  # idempotent: nothing left to delete
    finally:
        for tag in tags:
            digest = registry.manifest_digest(repository, tag)
            if digest:
                registry.delete_manifest(repository, digest)
            client.images.remove(f"{reference}:{tag}", force=True)
