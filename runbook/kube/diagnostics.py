"""What the runbook checks by hand when a deploy fails: the objects' recent Events, the
tail of failing pods' logs, and whether the image manifest exists in the registry."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from runbook.adapters.image_check import ImageCheck, log_summary
from runbook.adapters.registry import Registry
from runbook.kube.api import KubeApi


class PodDiagnosis(BaseModel):
    name: str
    reason: str  # e.g. CrashLoopBackOff, ImagePullBackOff, not ready
    log_tail: str


class Diagnostics(ImageCheck):
    events: list[str] = Field(default_factory=list)
    pods: list[PodDiagnosis] = Field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the run report and the alert."""
        parts = [self.image_summary()]
        for pod in self.pods:
            parts.append(f"pod {pod.name} {pod.reason}; log tail: {log_summary(pod.log_tail)}")
        if self.events:
            parts.append("events: " + "; ".join(self.events))
        return ". ".join(parts)


def diagnose(api: KubeApi, registry: Registry | None, namespace: str,
             selector: dict[str, str], object_names: set[str], image: str,
             log_lines: int, event_limit: int) -> Diagnostics:
    """Collect the diagnostics of the pods matching ``selector`` and the named objects."""
    pods = api.list_pods(namespace, selector)
    failing = [pod for pod in pods if not _ready(pod)]
    names = object_names | {pod["metadata"]["name"] for pod in pods}
    diagnostics = Diagnostics(
        events=_recent_events(api.list_events(namespace), names, event_limit),
        pods=[PodDiagnosis(name=pod["metadata"]["name"], reason=_reason(pod),
                           log_tail=api.pod_log_tail(namespace, pod["metadata"]["name"],
                                                     log_lines))
              for pod in failing],
        image=image,
    )
    diagnostics.check(registry)
    return diagnostics


def _recent_events(events: list[dict[str, Any]], names: set[str], limit: int) -> list[str]:
    relevant = [e for e in events if (e.get("involvedObject") or {}).get("name") in names]
    relevant.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return [
        f"{e.get('type', '')} {e['involvedObject'].get('kind', '')}/"
        f"{e['involvedObject'].get('name', '')} {e.get('reason', '')}: {e.get('message', '')}"
        f" (x{e.get('count', 1)})"
        for e in relevant[-limit:]
    ]


def _ready(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(s.get("ready") for s in statuses)


def _reason(pod: dict[str, Any]) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            return f"{waiting.get('reason', 'waiting')} (restarts: {status.get('restartCount', 0)})"
    return "not ready"
