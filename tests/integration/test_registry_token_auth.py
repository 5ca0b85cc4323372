"""The registry adapter's Bearer-token flow against a registry and a token service over real
HTTP (pytest-httpserver speaking the Docker Registry token protocol): 401 with a
``WWW-Authenticate: Bearer realm,service,scope`` challenge, the token fetched from the realm
with the login, the request repeated with it. No stack needed."""

from __future__ import annotations

import base64

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from runbook.adapters.registry import Registry
from runbook.errors import ConfigurationError
from runbook.infra import HttpService
from runbook.secretref import SecretRef

TOKEN = "tok-123"
DIGEST = "sha256:" + "c" * 64
PASSWORD = "token-service-password"


def registry(server: HTTPServer) -> Registry:
    return Registry.of(HttpService(part="registry", url=server.url_for("").rstrip("/"),
                                   username="ci",
                                   password=SecretRef(kind="env", name="TOKEN_TEST_PASSWORD"),
                                   insecure=True))


def serve(server: HTTPServer) -> list[str]:
    """A registry that wants a token for repository:team/api:pull, and its token service
    that hands one out for ci's basic login only. Returns the scopes asked for."""
    asked: list[str] = []
    realm = server.url_for("/token")

    def manifest(request: Request) -> Response:
        if request.headers.get("Authorization") == f"Bearer {TOKEN}":
            return Response(status=200, headers={"Docker-Content-Digest": DIGEST})
        challenge = (f'Bearer realm="{realm}",service="test-registry",'
                     'scope="repository:team/api:pull"')
        return Response(status=401, headers={"WWW-Authenticate": challenge})

    def token(request: Request) -> Response:
        asked.append(request.args.get("scope", ""))
        expected = "Basic " + base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return Response(status=401)
        return Response(f'{{"token": "{TOKEN}"}}', content_type="application/json")

    server.expect_request("/v2/team/api/manifests/v1").respond_with_handler(manifest)
    server.expect_request("/token").respond_with_handler(token)
    return asked


def test_bearer_token_flow(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_TEST_PASSWORD", PASSWORD)
    asked = serve(httpserver)
    assert registry(httpserver).manifest_digest("team/api", "v1") == DIGEST
    assert asked == ["repository:team/api:pull"]


def test_a_refused_token_login_is_one_line_naming_the_user(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKEN_TEST_PASSWORD", "wrong")
    serve(httpserver)
    with pytest.raises(ConfigurationError) as raised:
        registry(httpserver).manifest_digest("team/api", "v1")
    assert str(raised.value) == (f"registry {httpserver.url_for('').rstrip('/')}: "
                                 "authentication failed (401) for user ci")
    assert "wrong" not in str(raised.value)
