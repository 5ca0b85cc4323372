"""A service's Secret (``<name>-secrets``, one key per environment variable) written to the
environment's namespace. The Deployments read it through ``secretKeyRef``
(``kube/manifests.py``); variables from a Secret change only when pods start, so the
kubernetes target restarts the live pods after writing it."""

from __future__ import annotations

from typing import Any

from runbook.errors import TransientError
from runbook.kube import manifests as m
from runbook.kube.api import Conflict, KubeApi


def apply_secret(api: KubeApi, namespace: str, service: str, env: dict[str, str],
                 conflict_retries: int) -> None:
    """Create or replace the Secret with exactly ``env``; nothing when it holds it already.
    Replaced whole (not merged), so a key no longer declared is gone too."""
    desired = m.render_secret(service, namespace, env)
    name = desired["metadata"]["name"]
    for _ in range(conflict_retries + 1):
        current = api.read_secret(namespace, name)
        try:
            if current is None:
                api.create_secret(namespace, desired)
            elif (current.get("data") or {}) != desired["data"]:
                api.replace_secret(namespace, name, _versioned(desired, current))
            return
        except Conflict:
            continue  # written in between: read again and decide again
    raise TransientError(f"secret {name} kept changing while being published")


def _versioned(desired: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    body = {**desired, "metadata": {**desired["metadata"]}}
    body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
    return body
