"""The kubernetes target: blue-green (and rolling) against the cluster API.

Blue-green: the idle color's Deployment is applied and its rollout awaited; the preview
Service then selects it; the one write that moves traffic is the patch of the active
Service's selector. The previous color keeps running for an instant rollback until it is
scaled down (``scale_down_standby``, after ``scale_down_delay_s``); switching back to it
scales it up first. Rolling: the live color's Deployment gets the new pod template (the
previous template is kept in an annotation, so an undo needs no ReplicaSet history).

Every decision reads the cluster (labels, annotations, the Service selector), never memory:
a run that died anywhere is resumed by running it again, and re-applying an unchanged spec
writes nothing.

Metrics: :meth:`KubernetesTarget.metrics_selector` returns the same ``(proxy, server)``
labels as the router of the docker target, ``("<service>.<environment>",
"<color>-<revision>")``. On a cluster these series come from whatever measures the traffic
per revision (an HAProxy ingress / service mesh whose backend-server label is relabelled
from the pods' ``color`` and ``revision`` labels); runbook does not invent them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from runbook.adapters.image_check import split_image
from runbook.adapters.registry import Registry
from runbook.errors import DeployError, RolloutFailed, TransientError
from runbook.kube import manifests as m
from runbook.kube.api import Conflict, KubeApi
from runbook.kube.diagnostics import Diagnostics, diagnose
from runbook.kube.rollout import RolloutPhase, RolloutStatus, rollout_status
from runbook.kube.secrets import apply_secret
from runbook.kube.settings import KubernetesSettings
from runbook.models import ImageRef, Slot
from runbook.perf.cluster_resources import SOURCE as CLUSTER_SOURCE
from runbook.perf.cluster_resources import PrometheusContainerSampler
from runbook.perf.resources import ResourceSampler, UnmeasuredResources
from runbook.policy import DeploySettings
from runbook.secrets.rotate import Publisher
from runbook.service import ServiceSpec


class KubernetesTarget:
    """Blue-green and rolling deploys of a service into its environment's namespace."""

    def __init__(self, api: KubeApi, settings: KubernetesSettings,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self.settings = settings
        self._clock = clock
        self._sleep = sleep

    # -- reading state ----------------------------------------------------------------------

    def live(self, service: str, environment: str) -> Slot | None:
        active = self.api.read_service(self._ns(environment), service)
        if active is None:
            return None
        return self._slot(service, environment, active["spec"]["selector"][m.COLOR])

    def standby(self, service: str, environment: str) -> Slot | None:
        """The other color, unless it is a candidate awaiting promotion on the preview."""
        ns = self._ns(environment)
        active = self.api.read_service(ns, service)
        if active is None:
            return None
        live_color = active["spec"]["selector"][m.COLOR]
        other = _other(live_color)
        preview = self.api.read_service(ns, m.preview_name(service))
        if preview is not None and preview["spec"]["selector"][m.COLOR] == other:
            return None
        return self._slot(service, environment, other)

    def endpoint(self, service: str, environment: str) -> str:
        return f"http://{self._host(service, environment)}"

    def namespace(self, environment: str) -> str:
        return self._ns(environment)

    def preview_url(self, service: str, environment: str) -> str:
        return f"http://{self._host(m.preview_name(service), environment)}"

    def spec_of(self, service: str, environment: str) -> ServiceSpec | None:
        """Not kept on the cluster (the Deployment holds the rendered result, not the
        ``service.yaml``): a rollback to a revision other than the standby needs the service
        directory (``runbook rollback --service-dir``)."""
        return None

    def metrics_selector(self, slot: Slot) -> tuple[str, str]:
        return f"{slot.service}.{slot.environment}", slot.server

    def resource_sampler(self, slot: Slot) -> ResourceSampler:
        """The slot's pods' CPU and memory from the cluster's Prometheus (cAdvisor and
        kube-state-metrics series), read over the test window once it ends."""
        prometheus = self.settings.prometheus
        url = self.settings.prometheus_url or (prometheus.url if prometheus else None)
        if url is None:
            return UnmeasuredResources(CLUSTER_SOURCE, "no Prometheus of the cluster is "
                                       "configured (runbook.yaml or RUNBOOK_K8S_PROMETHEUS_URL)")
        # runbook.yaml's Prometheus of the environment, with its login; else an anonymous one.
        service = prometheus if prometheus is not None and not prometheus.local else None
        return PrometheusContainerSampler(url, self._ns(slot.environment),
                                          m.deployment_name(slot.service, slot.color),
                                          service=service)

    def secret_publisher(
        self, spec: ServiceSpec, environment: str, settings: DeploySettings
    ) -> Publisher:
        return KubernetesSecretPublisher(self, spec, environment, settings)

    # -- blue-green -------------------------------------------------------------------------

    def deploy_candidate(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        ns = self._ns(environment)
        live = self.live(spec.name, environment)
        color = _other(live.color) if live is not None else m.COLORS[0]
        model = m.ColorDeployment.of(spec, environment, ns, color, image.revision,
                                     image.by_digest, settings.health_timeout_s)
        self._apply_deployment(ns, m.render_deployment(model))
        self._await_rollout(ns, model.name, image.by_digest, settings.health_timeout_s)
        self._select(ns, m.render_service(spec.name, ns, spec.port, color, preview=True))
        return self._slot_of(spec.name, environment, color, preview=True)

    def restore_standby(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        """The candidate's rollout, then the preview Service back on the live color: the
        other color is a standby only while no candidate is on the preview."""
        slot = self.deploy_candidate(spec, environment, image, settings)
        live = self.live(spec.name, environment)
        if live is not None:
            ns = self._ns(environment)
            self._select(ns, m.render_service(spec.name, ns, spec.port, live.color,
                                              preview=True))
        return slot

    def switch(self, slot: Slot, settings: DeploySettings) -> None:
        """Scale the slot's color up if it was scaled down (waiting ``health_timeout_s`` for
        its pods), then patch the active Service's selector: the only write that moves
        traffic. No write if it selects the slot already."""
        ns = self._ns(slot.environment)
        name = m.deployment_name(slot.service, slot.color)
        deployment = self._require_revision(ns, name, slot)
        if deployment["spec"].get("replicas", 0) == 0 or \
                rollout_status(deployment).phase is not RolloutPhase.DONE:
            self._scale_up(ns, deployment, slot, settings.health_timeout_s)
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0][
            "containerPort"]
        self._select(ns, m.render_service(slot.service, ns, port, slot.color, preview=False),
                     annotations={m.SWITCHED_AT: _now_iso()})

    def discard(self, slot: Slot) -> str:
        """Delete a candidate that will not go live; returns its pods' last log lines."""
        ns = self._ns(slot.environment)
        name = m.deployment_name(slot.service, slot.color)
        live = self.live(slot.service, slot.environment)
        if live is not None and live.color == slot.color and self._serving(ns, name):
            # Isolated (scaled to zero, e.g. a first release found bad) it serves nothing.
            raise DeployError(f"{name} is live; refusing to discard it")
        logs = self._log_tails(ns, {m.APP: slot.service, m.COLOR: slot.color})
        self.api.delete_deployment(ns, name)
        return logs

    def retire(self, slot: Slot) -> None:
        """Scale a slot down to zero; the Deployment (its template) stays for a rollback."""
        ns = self._ns(slot.environment)
        live = self.live(slot.service, slot.environment)
        if live is not None and live.color == slot.color:
            raise DeployError(f"{slot.server} is live; refusing to retire it")
        deployment = self.api.read_deployment(ns, m.deployment_name(slot.service, slot.color))
        if deployment is not None and deployment["spec"].get("replicas", 0) != 0:
            self.api.patch_deployment(ns, deployment["metadata"]["name"],
                                      {"spec": {"replicas": 0}})

    def scale_down_standby(self, service: str, environment: str) -> bool:
        """Retire the standby once ``scale_down_delay_s`` passed since the switch (read from
        the active Service's annotation). Returns whether it scaled anything down."""
        return self._scale_down_standby(service, environment) is not None

    def tidy(self, service: str, environment: str) -> list[str]:
        """The standby color scaled to zero once ``scale_down_delay_s`` passed since the
        switch; its Deployment stays, and a rollback (:meth:`switch`) scales it up first."""
        retired = self._scale_down_standby(service, environment)
        if retired is None:
            return []
        return [f"scaled {m.deployment_name(service, retired.color)} ({retired.revision}) to "
                f"0 replicas: {self.settings.scale_down_delay_s:g} s after the switch; kept "
                "for rollback"]

    def _scale_down_standby(self, service: str, environment: str) -> Slot | None:
        ns = self._ns(environment)
        active = self.api.read_service(ns, service)
        standby = self.standby(service, environment)
        if active is None or standby is None:
            return None
        switched = (active["metadata"].get("annotations") or {}).get(m.SWITCHED_AT)
        if switched is not None:
            age = (datetime.now(UTC) - datetime.fromisoformat(switched)).total_seconds()
            if age < self.settings.scale_down_delay_s:
                return None
        deployment = self.api.read_deployment(ns, m.deployment_name(service, standby.color))
        if deployment is None or deployment["spec"].get("replicas", 0) == 0:
            return None
        self.retire(standby)
        return standby

    def isolate(self, service: str, environment: str) -> list[Slot]:
        """Both colors scaled to zero: no pod serves, so the active and preview Services have
        no endpoints. The Deployments (templates, labels, revision) stay for the
        investigation; the cluster's logs and events keep what the pods did."""
        ns = self._ns(environment)
        serving = self.live(service, environment)
        for color in m.COLORS:
            deployment = self.api.read_deployment(ns, m.deployment_name(service, color))
            if deployment is not None and deployment["spec"].get("replicas", 0) != 0:
                self.api.patch_deployment(ns, deployment["metadata"]["name"],
                                          {"spec": {"replicas": 0}})
        return [serving] if serving is not None else []

    def decommission(self, service: str, environment: str) -> None:
        ns = self._ns(environment)
        self.api.delete_service(ns, service)
        self.api.delete_service(ns, m.preview_name(service))
        for color in m.COLORS:
            self.api.delete_deployment(ns, m.deployment_name(service, color))

    # -- restarts (secret rotation) ---------------------------------------------------------

    def restart(self, service: str, environment: str, timeout_s: float) -> Slot:
        """``kubectl rollout restart`` of the live color: a new pod-template annotation
        replaces the pods one by one (``maxUnavailable: 0``), so they read their Secrets
        anew without downtime; waits for the rollout (RolloutFailed when it fails)."""
        live = self.live(service, environment)
        if live is None:
            raise DeployError(f"{service} has nothing live in {environment} to restart")
        ns = self._ns(environment)
        name = m.deployment_name(service, live.color)
        # Microseconds: two restarts within one second must still differ.
        stamp = datetime.now(UTC).isoformat()
        self.api.patch_deployment(ns, name, {"spec": {"template": {"metadata": {
            "annotations": {m.RESTARTED_AT: stamp}}}}})
        self._await_rollout(ns, name, live.image, timeout_s)
        return live

    def live_rollout(self, service: str, environment: str) -> RolloutStatus | None:
        """The live color's rollout status; None when nothing is live."""
        live = self.live(service, environment)
        if live is None:
            return None
        deployment = self.api.read_deployment(self._ns(environment),
                                              m.deployment_name(service, live.color))
        return rollout_status(deployment) if deployment is not None else None

    # -- rolling ----------------------------------------------------------------------------

    def rolling_update(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        """Update the live color's pod template in place and wait; on a failed rollout undo
        to the previous template and raise RolloutFailed with the diagnostics."""
        ns = self._ns(environment)
        live = self.live(spec.name, environment)
        color = live.color if live is not None else m.COLORS[0]
        model = m.ColorDeployment.of(spec, environment, ns, color, image.revision,
                                     image.by_digest, settings.health_timeout_s)
        desired = m.render_deployment(model)
        current = self.api.read_deployment(ns, model.name)
        if current is not None and _hash(current) != _hash(desired):
            desired["metadata"]["annotations"].update(_previous_of(current))
        elif current is not None:
            desired["metadata"]["annotations"].update(_kept_previous(current))
        self._apply_deployment(ns, desired)
        try:
            self._await_rollout(ns, model.name, image.by_digest, settings.health_timeout_s)
        except RolloutFailed as exc:
            if current is None:
                raise
            previous = self.undo(spec.name, environment, settings)
            raise RolloutFailed(f"{exc}; undone to revision {previous.revision}") from exc
        self._select(ns, m.render_service(spec.name, ns, spec.port, color, preview=False),
                     annotations={m.SWITCHED_AT: _now_iso()})
        return self._slot_of(spec.name, environment, color, preview=False)

    def roll_out(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        return self.rolling_update(spec, environment, image, settings)

    def undo(self, service: str, environment: str, settings: DeploySettings) -> Slot:
        """Put the live color's previous pod template back (``kubectl rollout undo``)."""
        ns = self._ns(environment)
        live = self.live(service, environment)
        color = live.color if live is not None else m.COLORS[0]
        name = m.deployment_name(service, color)
        for _ in range(self.settings.conflict_retries + 1):
            current = self.api.read_deployment(ns, name)
            annotations = (current or {}).get("metadata", {}).get("annotations") or {}
            if current is None or m.PREVIOUS_TEMPLATE not in annotations:
                raise DeployError(f"{name} keeps no previous revision to undo to")
            body = _undone(current)
            try:
                self.api.replace_deployment(ns, name, body)
                break
            except Conflict:
                continue
        else:
            raise TransientError(f"{name} kept changing during the undo")
        image = body["metadata"]["annotations"][m.IMAGE]
        self._await_rollout(ns, name, image, settings.health_timeout_s)
        return self._slot_of(service, environment, color, preview=False)

    # -- building blocks --------------------------------------------------------------------

    def _apply_deployment(self, ns: str, desired: dict[str, Any]) -> dict[str, Any]:
        """Create or replace; a Deployment already at the desired spec is left untouched."""
        name = desired["metadata"]["name"]
        for _ in range(self.settings.conflict_retries + 1):
            current = self.api.read_deployment(ns, name)
            try:
                if current is None:
                    return self.api.create_deployment(ns, desired)
                if _unchanged(current, desired):
                    return current
                body = json.loads(json.dumps(desired))
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                return self.api.replace_deployment(ns, name, body)
            except Conflict:
                continue  # someone wrote in between: read again and decide again
        raise TransientError(f"{name} kept changing while being applied")

    def _select(self, ns: str, desired: dict[str, Any],
                annotations: dict[str, str] | None = None) -> None:
        """Point a Service's selector at a color: one create or one patch, or nothing."""
        name = desired["metadata"]["name"]
        selector = desired["spec"]["selector"]
        for _ in range(self.settings.conflict_retries + 1):
            current = self.api.read_service(ns, name)
            try:
                if current is None:
                    if annotations:
                        desired["metadata"]["annotations"] = annotations
                    self.api.create_service(ns, desired)
                    return
                if current["spec"].get("selector") == selector:
                    return
                patch: dict[str, Any] = {
                    "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                    "spec": {"selector": selector},
                }
                if annotations:
                    patch["metadata"]["annotations"] = annotations
                self.api.patch_service(ns, name, patch)
                return
            except Conflict:
                continue
        raise TransientError(f"service {name} kept changing while being switched")

    def _scale_up(self, ns: str, deployment: dict[str, Any], slot: Slot,
                  timeout_s: float) -> None:
        name = deployment["metadata"]["name"]
        replicas = int(deployment["metadata"]["annotations"].get(m.REPLICAS, "1"))
        if deployment["spec"].get("replicas", 0) != replicas:
            self.api.patch_deployment(ns, name, {"spec": {"replicas": replicas}})
        self._await_rollout(ns, name, slot.image, timeout_s)

    def _await_rollout(self, ns: str, name: str, image: str, timeout_s: float) -> None:
        """Until updated == ready == desired for the latest generation; the progress deadline
        or our own deadline ends it with the Deployment's conditions and the diagnostics."""
        deadline = self._clock() + timeout_s
        while True:
            deployment = self.api.read_deployment(ns, name)
            if deployment is None:
                raise DeployError(f"{name} disappeared during its rollout")
            status = rollout_status(deployment)
            if status.phase is RolloutPhase.DONE:
                return
            if status.phase is RolloutPhase.FAILED or self._clock() >= deadline:
                selector = deployment["spec"]["selector"]["matchLabels"]
                diagnostics = self._diagnose(ns, selector, {name}, image)
                raise RolloutFailed(
                    f"rollout of {name} failed ({status.message}) within {timeout_s:.0f} s. "
                    f"Diagnostics: {diagnostics.summary()}"
                )
            self._sleep(self.settings.poll_interval_s)

    def _diagnose(self, ns: str, selector: dict[str, str], names: set[str],
                  image: str) -> Diagnostics:
        host, _, _ = split_image(image)
        configured = self.settings.registry
        if configured is not None and configured.host == host:
            registry: Registry | None = Registry.of(configured)
        else:
            registry = Registry(host, scheme=self.settings.registry_scheme) if host else None
        return diagnose(self.api, registry, ns, selector, names, image,
                        self.settings.log_tail_lines, self.settings.event_limit)

    def _log_tails(self, ns: str, selector: dict[str, str]) -> str:
        tails = []
        for pod in self.api.list_pods(ns, selector):
            name = pod["metadata"]["name"]
            tails.append(f"--- {name}\n"
                         + self.api.pod_log_tail(ns, name, self.settings.log_tail_lines))
        return "\n".join(tails).strip()

    def _require_revision(self, ns: str, name: str, slot: Slot) -> dict[str, Any]:
        deployment = self.api.read_deployment(ns, name)
        if deployment is None:
            raise DeployError(f"{name} does not exist; cannot send traffic to {slot.server}")
        revision = deployment["metadata"]["labels"].get(m.REVISION)
        if revision != slot.revision:
            raise DeployError(f"{name} runs {revision}, not {slot.revision}")
        return deployment

    def _serving(self, ns: str, name: str) -> bool:
        deployment = self.api.read_deployment(ns, name)
        return deployment is not None and deployment["spec"].get("replicas", 0) != 0

    def _slot(self, service: str, environment: str, color: str) -> Slot | None:
        deployment = self.api.read_deployment(self._ns(environment),
                                              m.deployment_name(service, color))
        if deployment is None:
            return None
        return _slot_from(deployment, self._host(service, environment))

    def _slot_of(self, service: str, environment: str, color: str, preview: bool) -> Slot:
        slot = self._slot(service, environment, color)
        if slot is None:
            raise DeployError(f"{m.deployment_name(service, color)} vanished")
        name = m.preview_name(service) if preview else service
        return slot.model_copy(update={"address": self._host(name, environment)})

    def _host(self, service_name: str, environment: str) -> str:
        ns = self._ns(environment)
        return f"{service_name}.{ns}.svc.{self.settings.cluster_domain}:{m.SERVICE_PORT}"

    def _ns(self, environment: str) -> str:
        return self.settings.namespace(environment)


def _slot_from(deployment: dict[str, Any], address: str) -> Slot:
    meta = deployment["metadata"]
    return Slot(
        service=meta["labels"][m.APP], environment=meta["annotations"][m.ENVIRONMENT],
        color=meta["labels"][m.COLOR], revision=meta["labels"][m.REVISION],
        image=meta["annotations"][m.IMAGE], address=address,
    )


def _other(color: str) -> str:
    return m.COLORS[1] if color == m.COLORS[0] else m.COLORS[0]


def _unchanged(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    return (_hash(current) == _hash(desired)
            and current["spec"].get("replicas") == desired["spec"]["replicas"]
            and current["metadata"].get("annotations") == desired["metadata"]["annotations"])


def _hash(deployment: dict[str, Any]) -> str:
    return m.spec_hash(_declared_spec(deployment))


def _declared_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    """The spec as runbook rendered it: the hash annotation when present (the API server
    adds defaults to what it stores)."""
    stored = (deployment["metadata"].get("annotations") or {}).get(m.SPEC_HASH)
    return {"hash": stored} if stored else deployment["spec"]


def _previous_of(current: dict[str, Any]) -> dict[str, str]:
    return {
        m.PREVIOUS_TEMPLATE: json.dumps(
            {"template": current["spec"]["template"],
             "image": current["metadata"]["annotations"].get(m.IMAGE, ""),
             "hash": current["metadata"]["annotations"].get(m.SPEC_HASH, "")},
            sort_keys=True),
        m.PREVIOUS_REVISION: current["metadata"]["labels"].get(m.REVISION, ""),
    }


def _kept_previous(current: dict[str, Any]) -> dict[str, str]:
    annotations = current["metadata"].get("annotations") or {}
    return {k: annotations[k] for k in (m.PREVIOUS_TEMPLATE, m.PREVIOUS_REVISION)
            if k in annotations}


def _undone(current: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(json.dumps(current))
    body.pop("status", None)
    annotations = body["metadata"]["annotations"]
    previous = json.loads(annotations.pop(m.PREVIOUS_TEMPLATE))
    revision = annotations.pop(m.PREVIOUS_REVISION)
    body["spec"]["template"] = previous["template"]
    body["metadata"]["labels"][m.REVISION] = revision
    annotations[m.IMAGE] = previous["image"]
    annotations[m.SPEC_HASH] = previous["hash"]
    return body


def _now_iso() -> str:
    # Milliseconds: a delay shorter than a second (tests, impatient clusters) stays exact.
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class KubernetesSecretPublisher:
    """The rotation ``Publisher`` of one service in one environment on a cluster: the
    service's Secret, then a rolling restart of the live Deployment (``kubectl rollout
    restart``), since variables from a Secret change only when pods start."""

    def __init__(self, target: KubernetesTarget, spec: ServiceSpec, environment: str,
                 settings: DeploySettings) -> None:
        self.target, self.spec, self.environment = target, spec, environment
        self.deploy = settings

    def publish(self, env: dict[str, str]) -> None:
        """Write the Secret, then restart the live pods so they read it (waits)."""
        target = self.target
        apply_secret(target.api, target.settings.namespace(self.environment), self.spec.name,
                     env, target.settings.conflict_retries)
        target.restart(self.spec.name, self.environment, self.deploy.health_timeout_s)

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
