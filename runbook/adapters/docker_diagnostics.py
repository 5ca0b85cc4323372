"""What the runbook checks by hand when a container fails on the docker target: its exit
code, whether the kernel killed it for memory (OOM), how often it restarted, the engine's
events for it, whether its image is in the registry, and the tail of its logs. The
counterpart of :mod:`runbook.kube.diagnostics`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import docker.errors
from docker.models.containers import Container
from pydantic import Field

from runbook.adapters.image_check import ImageCheck, log_summary, split_image
from runbook.adapters.registry import Registry

EVENT_WINDOW_S = 600
"""How far back the engine's events for the container are read."""
EVENT_LIMIT = 10


class ContainerDiagnostics(ImageCheck):
    container: str
    status: str
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    error: str = ""
    """The engine's own error for the container (e.g. a failed start)."""
    events: list[str] = Field(default_factory=list)
    log_tail: str = ""

    def summary(self) -> str:
        """One paragraph for the run report and the alert."""
        state = f"container {self.container} {self.status}"
        if self.exit_code is not None and self.status in ("exited", "dead"):
            state += f", exit code {self.exit_code}"
        if self.oom_killed:
            state += ", OOM-killed (memory limit too low or a leak)"
        if self.restart_count:
            state += f", restarted {self.restart_count} time(s)"
        if self.error:
            state += f", engine error: {self.error}"
        parts = [state, self.image_summary()]
        if self.events:
            parts.append("events: " + "; ".join(self.events))
        parts.append(f"log tail: {log_summary(self.log_tail)}")
        return ". ".join(parts)


def diagnose_container(client: docker.DockerClient, container: Container, image: str,
                       log_lines: int, registry_scheme: str = "http") -> ContainerDiagnostics:
    """Collect the diagnostics of one container (its state is re-read first)."""
    container.reload()
    state: dict[str, Any] = container.attrs.get("State", {})
    diagnostics = ContainerDiagnostics(
        container=container.name or container.id, status=str(state.get("Status", "unknown")),
        exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")),
        restart_count=int(container.attrs.get("RestartCount", 0)),
        error=str(state.get("Error", "")), image=image,
        events=container_events(client, container.id),
        log_tail=container.logs(tail=log_lines).decode(errors="replace").strip(),
    )
    host, name, _ = split_image(image)
    diagnostics.check(Registry(host, scheme=registry_scheme) if host and name else None)
    return diagnostics


def container_events(client: docker.DockerClient, container_id: str,
                     window_s: float = EVENT_WINDOW_S, limit: int = EVENT_LIMIT) -> list[str]:
    """The engine's recent events for the container (create, start, die, oom, kill, ...),
    oldest first; ``until`` now, so the stream ends instead of following."""
    now = time.time()
    try:
        stream = client.events(since=int(now - window_s), until=int(now) + 1, decode=True,
                               filters={"container": container_id})
        events = list(stream)
    except docker.errors.APIError:
        return []
    lines = []
    for event in events[-limit:]:
        at = datetime.fromtimestamp(event.get("time", now), UTC)
        attributes = event.get("Actor", {}).get("Attributes", {})
        extra = f" (exit code {attributes['exitCode']})" if "exitCode" in attributes else ""
        lines.append(f"{at:%H:%M:%S} {event.get('status') or event.get('Action')}{extra}")
    return lines

