"""Registry HTTP API v2: does a tag or digest exist, and under which digest."""

from __future__ import annotations

from datetime import datetime

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

    def tags(self, name: str) -> list[str]:
        """Every tag of repository ``name`` (empty when the repository does not exist)."""
        response = self._request("GET", f"{self._base}/{name}/tags/list")
        if response.status_code == 404:
            return []
        return list(response.json().get("tags") or [])

    def image_info(self, name: str, tag: str) -> tuple[str, datetime, dict[str, int]] | None:
        """(manifest digest, image creation time, blob digest -> size) of ``name:tag``, or
        None when the tag is gone. Single-platform (v2 / OCI image) manifests only."""
        response = self._request("GET", f"{self._base}/{name}/manifests/{tag}",
                                 headers={"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        manifest = response.json()
        if "config" not in manifest:
            raise ValueError(f"{name}:{tag} is a manifest list; cleanup handles single images")
        config = manifest["config"]
        blobs = {config["digest"]: config["size"]}
        blobs.update({layer["digest"]: layer["size"] for layer in manifest.get("layers", [])})
        blob = self._request("GET", f"{self._base}/{name}/blobs/{config['digest']}")
        created = datetime.fromisoformat(blob.json()["created"].replace("Z", "+00:00"))
        return response.headers["Docker-Content-Digest"], created, blobs

    def layers(self, name: str, reference: str) -> tuple[str, list[str]] | None:
        """(manifest digest, uncompressed layer ids bottom-up) of ``name:reference``, or None
        when it does not exist. An image built ``FROM`` a base starts with the base's layers.
        Single-platform (v2 / OCI image) manifests only."""
        response = self._request("GET", f"{self._base}/{name}/manifests/{reference}",
                                 headers={"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        manifest = response.json()
        if "config" not in manifest:
            raise ValueError(f"{name}:{reference} is a manifest list, not a single image")
        blob = self._request("GET", f"{self._base}/{name}/blobs/{manifest['config']['digest']}")
        diff_ids = blob.json().get("rootfs", {}).get("diff_ids", [])
        return response.headers["Docker-Content-Digest"], list(diff_ids)

    def delete_manifest(self, name: str, digest: str) -> bool:
        """Delete a manifest by digest (every tag on it goes); False when already gone.
        Needs ``storage.delete.enabled`` in the registry config."""
        response = self._request("DELETE", f"{self._base}/{name}/manifests/{digest}")
        return response.status_code != 404

    def _request(self, method: str, url: str, headers: dict[str, str] | None = None
                 ) -> httpx.Response:
        try:
            response = httpx.request(method, url, headers=headers, timeout=TIMEOUT_S,
                                     follow_redirects=True)
        except httpx.TransportError as exc:
            raise TransientError(f"registry {self.host} unreachable: {exc}") from exc
        if response.status_code >= 500:
            raise TransientError(f"registry {self.host} answered {response.status_code}")
        if response.status_code != 404:
            response.raise_for_status()
        return response
