"""Registry HTTP API v2: does a tag or digest exist, and under which digest.

Authentication as registries do it: a request without credentials gets 401 and a
``WWW-Authenticate`` challenge; ``Basic`` is answered with the login, ``Bearer realm=...,
service=..., scope=...`` by asking the realm (the token service) for a token with the login
and repeating the request with it (Docker Hub, GitLab, Harbor, distribution with a token
server). TLS is checked against the configured CA file. A refused login, an untrusted
certificate or a 403 is a :class:`ConfigurationError` (fixing it takes a person); only an
unreachable server and 5xx are transient.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime

import httpx

from runbook.adapters.access import basic_header, httpx_verify, refusal, transport_error, who
from runbook.errors import ConfigurationError, TransientError
from runbook.infra import HttpService, credentials
from runbook.secretref import Credentials

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
    """One registry's API. ``service`` (from :func:`runbook.infra.resolve`) carries the
    URL, login and CA; without it, anonymous ``scheme://host`` (the local stack's)."""

    def __init__(self, host: str, scheme: str = "http", *,
                 service: HttpService | None = None) -> None:
        self.host = service.host if service else host
        self.label = service.label if service else f"registry {scheme}://{host}"
        self._service = service
        self._verify: bool | str = service.verify if service else True
        self._base = f"{service.url if service else f'{scheme}://{host}'}/v2"

    @classmethod
    def of(cls, service: HttpService) -> Registry:
        return cls(service.host, service.scheme, service=service)

    def check(self) -> None:
        """Reach the API root with the configured login: the preflight's probe. Raises
        :class:`ConfigurationError` (login, TLS) or :class:`TransientError` (unreachable)."""
        self._request("GET", f"{self._base}/")

    def manifest_digest(self, name: str, reference: str) -> str | None:
        """The digest of ``name:reference`` (tag or digest), or None when it does not exist."""
        response = self._request("HEAD", f"{self._base}/{name}/manifests/{reference}",
                                 headers={"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        return response.headers.get("Docker-Content-Digest")

    def catalog(self) -> list[str]:
        """Every repository the login may see (``/v2/_catalog``)."""
        response = self._request("GET", f"{self._base}/_catalog")
        return list(response.json().get("repositories") or [])

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
        login = credentials(self._service) if self._service else None
        auth = ChallengeAuth(login, self.label)
        try:
            with httpx.Client(verify=httpx_verify(self._verify), timeout=TIMEOUT_S, auth=auth,
                              follow_redirects=True) as client:
                response = client.request(method, url, headers=headers)
        except httpx.TransportError as exc:
            raise transport_error(self.label, exc) from None
        if response.status_code >= 500:
            raise TransientError(f"{self.label} answered {response.status_code}")
        if response.status_code in (401, 403):
            raise ConfigurationError(refusal(self.label, response.status_code, who(login)))
        if response.status_code != 404:
            response.raise_for_status()
        return response


class ChallengeAuth(httpx.Auth):
    """Answers a registry's 401 challenge: Basic with the login, Bearer through the realm's
    token service. Without a login, only anonymous tokens are asked for."""

    requires_response_body = True

    def __init__(self, login: Credentials | None, label: str) -> None:
        self._login = login
        self._label = label

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self._login is not None:
            request.headers["Authorization"] = self._basic_header()
            yield request
        elif scheme == "bearer" and "realm" in params:
            token_response = yield self._token_request(params)
            token = _token_of(token_response)
            if token is not None:
                request.headers["Authorization"] = f"Bearer {token}"
                yield request

    def _basic_header(self) -> str:
        assert self._login is not None
        return basic_header(self._login)

    def _token_request(self, params: dict[str, str]) -> httpx.Request:
        query = {key: params[key] for key in ("service", "scope") if key in params}
        headers = {"Authorization": self._basic_header()} if self._login else {}
        return httpx.Request("GET", params["realm"], params=query, headers=headers)


def _token_of(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return None
    body = response.json()
    token = body.get("token") or body.get("access_token")
    return str(token) if token else None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://auth",service="registry",scope="repository:a:pull"`` ->
    ("bearer", {realm, service, scope}). Values may hold commas inside their quotes."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    key, value, in_quotes, reading_key = "", "", False, True
    for char in rest + ",":
        if reading_key:
            if char == "=":
                reading_key = False
            elif char not in ", ":
                key += char
        elif char == '"':
            in_quotes = not in_quotes
        elif char == "," and not in_quotes:
            params[key.lower()] = value
            key, value, reading_key = "", "", True
        else:
            value += char
    return scheme.lower(), {k: v for k, v in params.items() if k}
