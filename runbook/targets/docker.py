"""The docker target: two colors per environment, each a container, behind the HAProxy router.

What runs is read back from the engine (container labels) and the router (its persisted
routes), never kept in memory, so any run can pick up where another one stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import docker
import docker.errors
import httpx
from docker.models.containers import Container

from runbook.adapters.docker_diagnostics import diagnose_container
from runbook.adapters.http import probe
from runbook.errors import CandidateUnhealthy, DeployError, TransientError
from runbook.locks import file_lock
from runbook.models import ImageRef, Slot
from runbook.perf.docker_stats import DOCKER_SOURCE, DockerStatsSampler
from runbook.perf.resources import ResourceSampler, UnmeasuredResources
from runbook.policy import DeploySettings
from runbook.route_table import Route
from runbook.router import HAProxyRouter, Server
from runbook.secrets.rotate import Publisher, published_env
from runbook.secrets.store import SecretStore
from runbook.service import ServiceSpec
from runbook.settings import StackSettings
from runbook.store import store_for

COLORS = ("blue", "green")
LABEL = "io.runbook"
STOP_GRACE_S = 10
# A route's container lock is held for a graceful stop or a start, so a wait longer than a
# few stops means a stuck holder.
CONTAINERS_LOCK_TIMEOUT_S = 6 * STOP_GRACE_S
LOG_TAIL_LINES = 30


class DockerTarget:
    """Blue-green on the local Docker engine; traffic moves at the router."""

    def __init__(
        self, settings: StackSettings, client: docker.DockerClient, router: HAProxyRouter
    ) -> None:
        self.settings = settings
        self.client = client
        self.router = router

    # -- reading state ----------------------------------------------------------------------

    def live(self, service: str, environment: str) -> Slot | None:
        route = self.router.route(service, environment)
        server = route.live() if route else None
        return self._slot_for(service, environment, server.name) if server else None

    def standby(self, service: str, environment: str) -> Slot | None:
        route = self.router.route(service, environment)
        if route is None:
            return None
        for server in route.servers:
            is_candidate = route.preview is not None and route.preview.name == server.name
            if not server.enabled and not is_candidate:
                slot = self._slot_for(service, environment, server.name)
                if slot is not None:
                    return slot
        return None

    def namespace(self, environment: str) -> str:
        return environment  # containers have no namespace: the environment names them

    def endpoint(self, service: str, environment: str) -> str | None:
        # A read: the route (and its ports) is made by the first deploy, never by a look.
        route = self.router.route(service, environment)
        return f"http://{self.settings.host}:{route.port}" if route else None

    def preview_url(self, service: str, environment: str) -> str:
        route = self.router.ensure_route(service, environment)
        return f"http://{self.settings.host}:{route.preview_port}"

    def metrics_selector(self, slot: Slot) -> tuple[str, str]:
        return f"{slot.service}.{slot.environment}", slot.server

    def spec_of(self, service: str, environment: str) -> ServiceSpec | None:
        """The ``service.yaml`` the live revision (else the standby) was started with, from
        its container label; None when neither runs or they predate the label."""
        for slot in (self.live(service, environment), self.standby(service, environment)):
            if slot is None:
                continue
            try:
                container = self.client.containers.get(_container_name(slot))
            except docker.errors.NotFound:
                continue
            declared = container.labels.get(f"{LABEL}.spec")
            if declared:
                return ServiceSpec.model_validate_json(declared)
        return None

    def resource_sampler(self, slot: Slot) -> ResourceSampler:
        """The engine's stats of the slot's running container, read while the load runs."""
        container = self._running(slot.service, slot.environment, slot.server)
        if container is None:
            return UnmeasuredResources(DOCKER_SOURCE, f"no running container for {slot.server}")
        return DockerStatsSampler(container)

    def secret_publisher(
        self, spec: ServiceSpec, environment: str, settings: DeploySettings
    ) -> Publisher:
        return DockerSecretPublisher(self, spec, environment, settings)

    def _slot_for(self, service: str, environment: str, server: str) -> Slot | None:
        container = self._running(service, environment, server)
        return _slot(container, self._host_port(container)) if container else None

    def _running(self, service: str, environment: str, server: str) -> Container | None:
        for container in self._containers(service, environment):
            if container.labels.get(f"{LABEL}.server") == server and container.status == "running":
                return container
        return None

    def _isolated(self, service: str, environment: str) -> Slot | None:
        route = self.router.route(service, environment)
        names = route.isolated_from if route else []
        return self._slot_for(service, environment, names[0]) if names else None

    def _containers(self, service: str, environment: str) -> list[Container]:
        return self.client.containers.list(
            all=True,
            filters={
                "label": [f"{LABEL}.service={service}", f"{LABEL}.environment={environment}"]
            },
        )

    # -- changing state ---------------------------------------------------------------------

    def deploy_candidate(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        self.router.ensure_route(spec.name, environment)
        live = self.live(spec.name, environment)
        color = COLORS[1] if live is not None and live.color == COLORS[0] else COLORS[0]
        self._clear_color(spec.name, environment, color)
        container = self._start(spec, environment, color, image, self.secret_env(spec,
                                                                             environment))
        slot = _slot(container, self._host_port(container))
        self._wait_healthy(container, slot, spec.health_path, settings)
        self.router.set_preview(spec.name, environment, Server(name=slot.server,
                                                               address=slot.address))
        return slot

    def restore_standby(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        """The candidate's start, then off the preview port: a disabled server of the
        route that is not the preview is the standby."""
        slot = self.deploy_candidate(spec, environment, image, settings)
        self.router.clear_preview(spec.name, environment)
        return slot

    def secret_env(self, spec: ServiceSpec, environment: str) -> dict[str, str]:
        """The published values of the service's declared secrets (every accepted value
        while a rotation overlaps), so a new release starts with what its predecessor had.
        Passed to the engine only, never logged."""
        if not spec.secrets:
            return {}
        store = SecretStore(store_for(self.settings), spec.name, environment)
        return published_env(spec.secrets, store.load())

    def restart_with_env(
        self, spec: ServiceSpec, environment: str, env: dict[str, str], settings: DeploySettings
    ) -> Slot:
        """Start the live revision again in the idle color with ``env`` added to its
        environment, wait for its health and switch to it atomically (zero downtime). The
        container it replaces stays as the standby; its rollback standby, if any, is gone.

        Used to publish rotated secrets: values are passed to the engine, never logged. An
        isolated service (security incident) restarts the revision it was isolated from:
        the fresh container, with the new values only, is what serves again.
        """
        live = self.live(spec.name, environment) or self._isolated(spec.name, environment)
        if live is None:
            raise DeployError(f"{spec.name} has no live revision in {environment}")
        color = COLORS[1] if live.color == COLORS[0] else COLORS[0]
        self._clear_color(spec.name, environment, color)
        repository, _, digest = live.image.partition("@")
        image = ImageRef(repository=repository, tag=live.revision, digest=digest)
        container = self._start(spec, environment, color, image, env)
        slot = _slot(container, self._host_port(container))
        self._wait_healthy(container, slot, spec.health_path, settings)
        self.router.set_preview(spec.name, environment, Server(name=slot.server,
                                                               address=slot.address))
        self.switch(slot, settings)
        return slot

    def roll_out(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        """One container per environment has nothing to roll through: the new revision
        starts beside the old, takes the traffic once healthy, and the old one is kept
        until the release is verified (then retired), so an undo is one switch."""
        slot = self.deploy_candidate(spec, environment, image, settings)
        self.switch(slot, settings)
        return slot

    def undo(self, service: str, environment: str, settings: DeploySettings) -> Slot:
        live = self.live(service, environment)
        previous = self.standby(service, environment)
        if previous is None:
            raise DeployError(f"{service}/{environment} keeps no previous revision to undo to")
        self.switch(previous, settings)
        if live is not None:
            self.discard(live)
        return previous

    def switch(self, slot: Slot, settings: DeploySettings) -> None:
        """One router call; the container already runs, so there is nothing to wait for."""
        self.router.switch(slot.service, slot.environment, slot.server)

    def discard(self, slot: Slot) -> str:
        logs = ""
        try:
            container = self.client.containers.get(_container_name(slot))
            logs = _tail(container)
        except docker.errors.NotFound:
            pass
        self.retire(slot)
        return logs

    def retire(self, slot: Slot) -> None:
        with self._containers_locked(slot.service, slot.environment):
            self.router.remove_server(slot.service, slot.environment, slot.server)
            try:
                container = self.client.containers.get(_container_name(slot))
            except docker.errors.NotFound:
                return
            container.stop(timeout=STOP_GRACE_S)
            container.remove(force=True)

    def restore(self) -> list[str]:
        """Restart the stopped containers of every route (after the engine or machine
        restarted) and point the router at their new ports; the servers restarted.

        A container is stopped on purpose too: ``retire`` takes its server out of the
        route, stops it, then removes it. Each start is decided again under the route's
        container lock, from the route as it is then, so a ``stack up`` running beside a
        rollback never starts the revision being retired (it once did: the bad release's
        process came back for seconds, in the parallel suite)."""
        restarted = []
        for route in self.router.routes():
            for container in self._containers(route.service, route.environment):
                if container.status != "running" and _serves(route, container):
                    server = self._restart_if_routed(route.service, route.environment,
                                                     container)
                    if server is not None:
                        restarted.append(server)
        return restarted

    def _restart_if_routed(self, service: str, environment: str,
                           container: Container) -> str | None:
        """Start a stopped container whose server the route still has, wait for its health
        and point the router at its new port; its server, or None if it is no longer
        routed (retired meanwhile)."""
        with self._containers_locked(service, environment):
            if not self._routed(service, environment, container) or not _stopped(container):
                return None
            container.start()
        slot = _slot(container, self._host_port(container))
        health_path = container.labels.get(f"{LABEL}.health_path", "/")
        try:
            self._wait_healthy(container, slot, health_path, _deploy_settings(container))
        except CandidateUnhealthy:
            # Retired while it started (stopped by ``retire``, not unhealthy): not an error.
            if not self._routed(service, environment, container):
                return None
            raise
        with self._containers_locked(service, environment):
            if not self._routed(service, environment, container):
                return None
            server = container.labels[f"{LABEL}.server"]
            self.router.set_address(service, environment, server, slot.address)
        return server

    def _routed(self, service: str, environment: str, container: Container) -> bool:
        """Whether the route, read now, still has the container's server."""
        route = self.router.route(service, environment)
        return route is not None and _serves(route, container)

    @contextlib.contextmanager
    def _containers_locked(self, service: str, environment: str) -> Iterator[None]:
        """The containers of one route, one changer at a time across processes: a
        container's removal from the route and from the engine (``retire``,
        ``decommission``) against ``restore``'s decision to start it. Held for a stop
        (``STOP_GRACE_S`` at most) or a start, never for a health wait; other routes never
        wait on it."""
        path = self.settings.path("run", "containers", f"{service}.{environment}.lock")
        with file_lock(path, CONTAINERS_LOCK_TIMEOUT_S,
                       f"the containers of {service}/{environment} are still locked after "
                       f"{CONTAINERS_LOCK_TIMEOUT_S:.0f} s ({path})"):
            yield

    def tidy(self, service: str, environment: str) -> list[str]:
        """Nothing to release: the standby container is the instant rollback (one router
        call), kept until the next release replaces it; rolling retires it at release."""
        return []

    def isolate(self, service: str, environment: str) -> list[Slot]:
        """Every server of the route disabled at the router: the endpoint and the preview
        answer 503. Containers keep running, untouched, for forensics."""
        serving = self.router.isolate(service, environment)
        slots = [self._slot_for(service, environment, name) for name in serving]
        return [slot for slot in slots if slot is not None]

    def decommission(self, service: str, environment: str) -> None:
        """Remove every container and the route of a service in an environment."""
        with self._containers_locked(service, environment):
            for container in self._containers(service, environment):
                container.remove(force=True)
            self.router.remove_route(service, environment)

    def _clear_color(self, service: str, environment: str, color: str) -> None:
        """Remove what an older revision left in the color about to be reused."""
        route = self.router.route(service, environment)
        for container in self._containers(service, environment):
            if container.labels.get(f"{LABEL}.color") != color:
                continue
            server = container.labels.get(f"{LABEL}.server", "")
            live = route.live() if route else None
            if live is not None and live.name == server:
                raise DeployError(f"{container.name} is live; refusing to replace it")
            with self._containers_locked(service, environment):
                self.router.remove_server(service, environment, server)
                container.remove(force=True)

    def _start(
        self, spec: ServiceSpec, environment: str, color: str, image: ImageRef,
        env: dict[str, str] | None = None,
    ) -> Container:
        name = f"{spec.name}-{environment}-{color}"
        labels = {
            f"{LABEL}.service": spec.name,
            f"{LABEL}.environment": environment,
            f"{LABEL}.color": color,
            f"{LABEL}.revision": image.revision,
            f"{LABEL}.image": image.by_digest,
            f"{LABEL}.server": f"{color}-{image.revision}",
            f"{LABEL}.health_path": spec.health_path,
            # What a rollback to any revision redeploys it with (no checkout needed).
            f"{LABEL}.spec": spec.model_dump_json(by_alias=True),
        }
        if spec.metrics is not None:
            # Prometheus discovers these (docker_sd_configs) and scrapes the container,
            # labelling its series with the service, environment, color and revision above.
            labels[f"{LABEL}.metrics_path"] = spec.metrics.path
            labels[f"{LABEL}.metrics_port"] = str(spec.metrics.port or spec.port)
        limits: dict[str, int] = {}
        if spec.resources.memory_mb:
            limits["mem_limit"] = spec.resources.memory_mb * 1024 * 1024
        if spec.resources.cpus:
            limits["nano_cpus"] = int(spec.resources.cpus * 1e9)
        try:
            return self.client.containers.run(
                image.by_digest,
                name=name,
                detach=True,
                labels=labels,
                environment=env or {},
                ports={f"{spec.port}/tcp": (self.settings.host, None)},
                **limits,
            )
        except docker.errors.ImageNotFound as exc:
            raise DeployError(f"image {image.by_digest} not found: {exc.explanation}") from exc
        except docker.errors.APIError as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise TransientError(f"starting {name}: {exc.explanation}") from exc
            raise DeployError(f"starting {name}: {exc.explanation}") from exc

    def _host_port(self, container: Container) -> str:
        deadline = time.monotonic() + 10
        while True:
            container.reload()
            for bindings in (container.ports or {}).values():
                if bindings:
                    return f"{self.settings.host}:{bindings[0]['HostPort']}"
            if time.monotonic() > deadline or container.status == "exited":
                raise DeployError(f"{container.name} published no port ({container.status})")
            time.sleep(0.1)

    def _wait_healthy(
        self, container: Container, slot: Slot, health_path: str, settings: DeploySettings
    ) -> None:
        url = f"http://{slot.address}{health_path}"
        deadline = time.monotonic() + settings.health_timeout_s
        last = "no answer yet"
        with httpx.Client() as http:
            while time.monotonic() < deadline:
                result = probe(http, url, settings.health_request_timeout_s)
                if result.ok:
                    return
                last = result.detail
                container.reload()
                if container.status in ("exited", "dead"):
                    last = f"container {container.status}"
                    break
                time.sleep(0.5)
        diagnostics = diagnose_container(self.client, container, slot.image, LOG_TAIL_LINES)
        raise CandidateUnhealthy(
            f"revision {slot.revision} never became healthy at {health_path} "
            f"within {settings.health_timeout_s:.0f} s: {last}. "
            f"Diagnostics: {diagnostics.summary()}"
        )


def _serves(route: Route, container: Container) -> bool:
    """Whether the route has the container's server (live, standby or not yet switched)."""
    server = container.labels.get(f"{LABEL}.server", "")
    return any(s.name == server for s in route.servers)


def _stopped(container: Container) -> bool:
    """Whether the container, read now, still exists and is not running."""
    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return container.status != "running"


def _slot(container: Container, address: str) -> Slot:
    labels = container.labels
    return Slot(
        service=labels[f"{LABEL}.service"],
        environment=labels[f"{LABEL}.environment"],
        color=labels[f"{LABEL}.color"],
        revision=labels[f"{LABEL}.revision"],
        image=labels[f"{LABEL}.image"],
        address=address,
    )


def _deploy_settings(container: Container) -> DeploySettings:
    """The deploy settings of the service the container was started for (its ``service.yaml``
    label): a restart waits for its health as long as its release did. A container started
    before the label was kept has only the defaults to go by."""
    declared = container.labels.get(f"{LABEL}.spec")
    if not declared:
        return DeploySettings()
    environment = container.labels[f"{LABEL}.environment"]
    return ServiceSpec.model_validate_json(declared).policy_for(environment).deploy


def _container_name(slot: Slot) -> str:
    return f"{slot.service}-{slot.environment}-{slot.color}"


def _tail(container: Container) -> str:
    return container.logs(tail=LOG_TAIL_LINES).decode(errors="replace").strip()


class DockerSecretPublisher:
    """The rotation ``Publisher`` of one service in one environment: the live revision
    restarts in the idle color with the new environment, the router switches atomically,
    the old container stays as the standby until the old values are revoked."""

    def __init__(self, target: DockerTarget, spec: ServiceSpec, environment: str,
                 settings: DeploySettings) -> None:
        self.target, self.spec, self.environment = target, spec, environment
        self.deploy = settings

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
