"""A Kubernetes API stand-in for tests: kmock's emulator, filled in where our target needs it.

kmock 0.8 serves create / read / list / patch / delete over real HTTP, but ignores label
selectors, has no PUT, stamps no uid / resourceVersion / generation and runs no controllers.
:class:`Cluster` adds those (the parts of the API server's contract the target relies on:
optimistic concurrency, generation bumps on spec changes, equality selectors, pod logs) and
a fault hook (409 / 5xx / 403 answers). It is served on loopback from a background event
loop so the official *sync* ``kubernetes`` client reaches it through an ordinary kubeconfig.

Status changes a controller would make are applied by the test through ``controller``, a
callback run after every write to a Deployment (see :func:`rolled_out`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import yaml
from kmock._internal import enums, rendering
from kmock._internal.k8s import KubernetesError

Controller = Callable[["Cluster", str, str], None]

RESOURCES = {
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True},
    "v1/services": {"kind": "Service", "namespaced": True},
    "v1/pods": {"kind": "Pod", "namespaced": True},
    "v1/events": {"kind": "Event", "namespaced": True},
    "v1/secrets": {"kind": "Secret", "namespaced": True},
}


@dataclass
class Fault:
    """Answer ``status`` instead of serving, ``times`` times, for requests that match."""

    method: str
    resource: str  # plural, e.g. "services"
    status: int
    times: int = 1
    name: str | None = None


@dataclass(frozen=True)
class Call:
    """One request as the API server saw it (for asserting on the request log)."""

    method: str
    resource: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    body: Any


class Cluster(kmock.KubernetesEmulator):
    """kmock's emulator plus PUT, equality label selectors, metadata stamps, faults, logs."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, info in RESOURCES.items():
            self.resources[key] = info
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.controller: Controller | None = None
        self._versions = itertools.count(1)

    # -- what the test reads and sets -------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (_resource(resource), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(dict(self.objects[key].raw))

    def put(self, resource: str, namespace: str, body: dict[str, Any]) -> None:
        """Store an object as the cluster would (stamped), e.g. pods and events a controller
        or the kubelet creates."""
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["namespace"] = namespace
        self._stamp(body, previous=None)
        self.objects[(_resource(resource), namespace, body["metadata"]["name"])] = body

    def set_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Write a Deployment's status, as the deployment controller does."""
        self.objects[(_resource("deployments"), namespace, name)].patch({"status": None})
        self.objects[(_resource("deployments"), namespace, name)].patch({"status": status})

    def writes(self, resource: str | None = None, name: str | None = None) -> list[Call]:
        """The requests that changed something, optionally of one resource / object."""
        return [
            call for call in self.calls
            if call.method in ("POST", "PUT", "PATCH", "DELETE")
            and (resource is None or call.resource == resource)
            and (name is None or call.name == name)
        ]

    # -- the server side --------------------------------------------------------------------

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        resource = request.resource.plural if request.resource is not None else None
        self.calls.append(Call(request.method.value, resource, request.namespace, request.name,
                               request.subresource, copy.deepcopy(request.data)))
        self._inject_fault(request, resource)
        if request.subresource == "log" and resource == "pods":
            text = self.pod_logs.get((request.namespace or "", request.name or ""), "")
            return aiohttp.web.Response(text=text, content_type="text/plain")
        if request.method == enums.method.PUT and request.name and request.resource:
            return await self._replace(request)
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            self._stamp(request.data, previous=None)
        if request.action == enums.action.UPDATE and request.name and request.resource:
            return await self._merge_patch(request)
        response = await super()._handle(request)
        if request.action == enums.action.CREATE and resource == "deployments":
            self._run_controller(request.namespace, request.data["metadata"]["name"])
        return response

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        listing = await super()._serve_list(request)
        selector = _parse_selector(request.params.get("labelSelector", ""))
        listing["items"] = [
            item for item in listing["items"]
            if all((item.get("metadata", {}).get("labels") or {}).get(key) == value
                   for key, value in selector.items())
        ]
        return listing

    async def _replace(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            current = self._current(key)
            body = copy.deepcopy(request.data)
            self._check_version(body, current)
            # PUT on the main resource never changes status (that is the status subresource).
            body.pop("status", None)
            if "status" in current:
                body["status"] = current["status"]
            self._stamp(body, previous=current)
            self.objects[key].patch({k: None for k in current})
            self.objects[key].patch(body)
        self._after_write(request)
        return aiohttp.web.json_response(self.get(request.resource.plural, request.namespace,
                                                  request.name))

    async def _merge_patch(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            current = self._current(key)
            patch = copy.deepcopy(request.data)
            self._check_version(patch, current)
            patch.get("metadata", {}).pop("resourceVersion", None)
            self.objects[key].patch(patch)
            updated = dict(self.objects[key].raw)
            self._stamp(updated, previous=current)
            self.objects[key].patch({"metadata": updated["metadata"]})
        self._after_write(request)
        return aiohttp.web.json_response(self.get(request.resource.plural, request.namespace,
                                                  request.name))

    def _current(self, key: Any) -> dict[str, Any]:
        if key not in self.objects or self.objects[key].deleted:
            raise KubernetesError(status=404, reason="NotFound", message=f"{key[2]} not found")
        return copy.deepcopy(dict(self.objects[key].raw))

    @staticmethod
    def _check_version(body: dict[str, Any], current: dict[str, Any]) -> None:
        wanted = body.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != current["metadata"].get("resourceVersion"):
            raise KubernetesError(
                status=409, reason="Conflict",
                message="the object has been modified; please apply your changes to the "
                        "latest version and try again",
            )

    def _stamp(self, body: dict[str, Any], previous: dict[str, Any] | None) -> None:
        meta = body.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._versions))
        if previous is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            return
        old_meta = previous["metadata"]
        meta["uid"] = old_meta["uid"]
        meta["creationTimestamp"] = old_meta["creationTimestamp"]
        spec_changed = body.get("spec") != previous.get("spec")
        meta["generation"] = old_meta.get("generation", 1) + (1 if spec_changed else 0)

    def _after_write(self, request: rendering.Request) -> None:
        if request.resource is not None and request.resource.plural == "deployments":
            self._run_controller(request.namespace, request.name)

    def _run_controller(self, namespace: str | None, name: str | None) -> None:
        if self.controller is not None and namespace and name:
            self.controller(self, namespace, name)

    def _inject_fault(self, request: rendering.Request, resource: str | None) -> None:
        for fault in self.faults:
            if (fault.times > 0 and fault.method == request.method.value
                    and fault.resource == resource
                    and (fault.name is None or fault.name == request.name)):
                fault.times -= 1
                raise KubernetesError(status=fault.status, reason=_REASONS.get(fault.status),
                                      message=f"injected {fault.status}")


_REASONS = {403: "Forbidden", 409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}


def _resource(plural: str) -> kmock.resource:
    group = "apps" if plural == "deployments" else ""
    return kmock.resource(group, "v1", plural)


def _parse_selector(text: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in text.split(",") if part]
    return {key.rstrip("="): value.lstrip("=") for key, value in pairs}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- controllers the tests choose -----------------------------------------------------------


def rolled_out(cluster: Cluster, namespace: str, name: str) -> None:
    """The deployment controller finishing a rollout: every replica updated and ready."""
    deployment = cluster.get("deployments", namespace, name)
    if deployment is None:
        return
    replicas = deployment["spec"].get("replicas", 1)
    cluster.set_status(namespace, name, {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True",
                        "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True",
                        "reason": "NewReplicaSetAvailable"}],
    })


def stuck(cluster: Cluster, namespace: str, name: str) -> None:
    """A rollout whose pods never become ready: the controller gives up at the progress
    deadline; the kubelet leaves a crash-looping pod, its logs and Events behind."""
    deployment = cluster.get("deployments", namespace, name)
    if deployment is None or deployment["spec"].get("replicas", 1) == 0:
        rolled_out(cluster, namespace, name)
        return
    labels = deployment["spec"]["selector"]["matchLabels"]
    pod = f"{name}-7d9c-x1"
    cluster.set_status(namespace, name, {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0, "unavailableReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f'ReplicaSet "{name}-7d9c" has timed out progressing.'}],
    })
    cluster.put("pods", namespace, {
        "metadata": {"name": pod, "labels": labels},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": False, "restartCount": 4, "image": "app", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    })
    cluster.pod_logs[(namespace, pod)] = "starting\nTraceback: KeyError 'DATABASE_URL'\n"
    cluster.put("events", namespace, {
        "metadata": {"name": f"{pod}.1"},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace},
        "type": "Warning", "reason": "BackOff", "count": 4,
        "message": "Back-off restarting failed container app",
        "lastTimestamp": _now(),
    })


# -- serving it -----------------------------------------------------------------------------


@contextmanager
def serve(tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    """Run a :class:`Cluster` on loopback; yields it and a kubeconfig pointing at it."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        async with Cluster() as cluster, kmock.Server(cluster) as server:
            holder["cluster"], holder["url"] = cluster, str(server.url).rstrip("/")
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(timeout=10):
        raise RuntimeError("the kmock cluster did not start within 10 s")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": holder["url"]}}],
        "users": [{"name": "tester", "user": {"token": "kmock"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
    }))
    try:
        yield holder["cluster"], kubeconfig
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


def stuck_on(revision: str) -> Controller:
    """Rollouts of ``revision`` get stuck; every other revision rolls out."""

    def controller(cluster: Cluster, namespace: str, name: str) -> None:
        deployment = cluster.get("deployments", namespace, name)
        labels = (deployment or {}).get("spec", {}).get("template", {}).get("metadata", {})
        if labels.get("labels", {}).get("revision") == revision:
            stuck(cluster, namespace, name)
        else:
            rolled_out(cluster, namespace, name)

    return controller
