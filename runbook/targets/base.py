"""The deploy-target protocol. Flows talk to this, never to a particular target."""

from __future__ import annotations

from typing import Protocol

from runbook.models import ImageRef, Slot
from runbook.policy import DeploySettings
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

    def deploy_candidate(
        self, spec: ServiceSpec, environment: str, image: ImageRef, settings: DeploySettings
    ) -> Slot:
        """Start the image in the idle color, wait for its health, expose it on the preview."""
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
        until it is done. A failed rollout is undone by the target and raises GateFailed."""
        ...

    def undo(self, service: str, environment: str, settings: DeploySettings) -> Slot:
        """Rolling strategy: return the environment to the revision before the last
        roll_out (``kubectl rollout undo``)."""
        ...

    def discard(self, slot: Slot) -> str:
        """Remove a candidate that will not go live; returns the tail of its logs."""
        ...

    def switch(self, slot: Slot) -> None:
        """Move all of the environment's traffic to ``slot`` in one atomic step."""
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

    def metrics_selector(self, slot: Slot) -> tuple[str, str]:
        """(proxy, server) labels of the slot's series in Prometheus."""
        ...
