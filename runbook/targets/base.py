"""The deploy-target protocol. Flows and tasks talk to this, never to a particular target
(:func:`runbook.targets.make_target` picks one).

A target raises :class:`~runbook.errors.CandidateUnhealthy` (a rollout:
:class:`~runbook.errors.RolloutFailed`) when a revision it started never became healthy,
with its diagnostics in the message; what that means (a failed gate, a failed rotation) is
the caller's to decide. Every wait a target makes takes its deadline from the service's
:class:`~runbook.policy.DeploySettings`, passed in.
"""

from __future__ import annotations

from typing import Protocol

from runbook.models import ImageRef, Slot
from runbook.perf.resources import ResourceSampler
from runbook.policy import DeploySettings
from runbook.secrets.rotate import Publisher
from runbook.service import ServiceSpec


class DeployTarget(Protocol):
    """Where releases run: the local Docker engine behind HAProxy, or a cluster."""

    def live(self, service: str, environment: str) -> Slot | None:
        """The slot receiving the environment's traffic, if any."""
        ...

    def standby(self, service: str, environment: str) -> Slot | None:
        """The previous revision kept for an instant switch back, if any."""
        ...

    def endpoint(self, service: str, environment: str) -> str | None:
        """URL of the environment's traffic; stable across releases. None when the target
        has not made one yet (nothing was deployed): a read never creates it."""
        ...

    def preview_url(self, service: str, environment: str) -> str:
        """URL reaching only the candidate slot (never live traffic)."""
        ...

    def namespace(self, environment: str) -> str:
        """Where the environment's objects live (a check's ``{{namespace}}``): the cluster
        namespace, or the environment's own name where the target has none."""
        ...

    def deploy_candidate(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        """Start the image in the idle color, wait for its health, expose it on the preview.
        CandidateUnhealthy when it never became healthy."""
        ...

    def restore_standby(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        """Start the image in the idle color again as the rollback standby: healthy, not on
        the preview, no traffic (after a perf check of the live revision borrowed the color)."""
        ...

    def roll_out(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        """Rolling strategy: replace the live revision (traffic moves as it rolls) and wait
        until it is done. A failed rollout is undone by the target and raises
        RolloutFailed (CandidateUnhealthy where nothing was rolled in place)."""
        ...

    def undo(self, service: str, environment: str, settings: DeploySettings) -> Slot:
        """Rolling strategy: return the environment to the revision before the last
        roll_out (``kubectl rollout undo``)."""
        ...

    def discard(self, slot: Slot) -> str:
        """Remove a candidate that will not go live; returns the tail of its logs."""
        ...

    def switch(self, slot: Slot, settings: DeploySettings) -> None:
        """Move all of the environment's traffic to ``slot`` in one atomic step (a slot
        kept with no replicas is scaled up first, within ``settings.health_timeout_s``)."""
        ...

    def retire(self, slot: Slot) -> None:
        """Stop a slot that no longer needs to be kept for rollback."""
        ...

    def tidy(self, service: str, environment: str) -> list[str]:
        """Release what is only kept past its keep-delay (e.g. the standby's replicas once
        the rollback window after the switch is over) while keeping the environment able to
        roll back. Idempotent; returns what was done, one line per action."""
        ...

    def isolate(self, service: str, environment: str) -> list[Slot]:
        """Zero traffic to every revision of the service in the environment (security
        incident). What ran is kept for forensics where the target can keep it; returns the
        slots that were serving."""
        ...

    def decommission(self, service: str, environment: str) -> None:
        """Take the service out of the environment entirely (containers, route)."""
        ...

    def spec_of(self, service: str, environment: str) -> ServiceSpec | None:
        """The ``service.yaml`` the live (else the standby) revision was deployed with, when
        the target keeps it; a rollback to an older revision redeploys with it."""
        ...

    def metrics_selector(self, slot: Slot) -> tuple[str, str]:
        """(proxy, server) labels of the slot's series in Prometheus."""
        ...

    def resource_sampler(self, slot: Slot) -> ResourceSampler:
        """What measures the slot's CPU and memory during a load test (or says why nothing
        can)."""
        ...

    def secret_publisher(
        self, spec: ServiceSpec, environment: str, settings: DeploySettings
    ) -> Publisher:
        """Where a rotation publishes the service's secrets in the environment: the running
        revision restarted with the new values, without downtime."""
        ...
