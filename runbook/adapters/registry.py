"""Registry HTTP API v2: does a tag or digest exist, and under which digest."""

from __future__ import annotations

import httpx

from runbook.errors import TransientError

TIMEOUT_S = 10.0
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


class Registry:
    def __init__(self, host: str, scheme: str = "http") -> None:
        self.host = host
        self._base = f"{scheme}://{host}/v2"

    def manifest_digest(self, name: str, reference: str) -> str | None:
        """The digest of ``name:reference`` (tag or digest), or None when it does not exist."""
        try:
            response = httpx.head(
                f"{self._base}/{name}/manifests/{reference}",
                headers={"Accept": MANIFEST_TYPES},
                timeout=TIMEOUT_S,
            )
        except httpx.TransportError as exc:
            raise TransientError(f"registry {self.host} unreachable: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 500:
            raise TransientError(f"registry {self.host} answered {response.status_code}")
        response.raise_for_status()
        return response.headers.get("Docker-Content-Digest")
