"""Secrets by reference: ``runbook.yaml`` names where a secret is, this module reads it at
the moment of use and hands it out as a ``SecretStr``.

Three places a secret can be: an environment variable (what CI and a Kubernetes Secret
mounted as env give), a Docker ``config.json`` ``auths`` entry (what ``docker login``
writes), a Prefect Secret block (what a Prefect work pool shares). A value read here never
goes into a log, a report, an artifact or an exception message: errors name the reference
(the variable, the file, the block), never what it holds.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, SecretStr

from runbook.errors import ConfigurationError

SecretKind = Literal["env", "prefect_block"]


class SecretRef(BaseModel):
    """Where one secret is; never the secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SecretKind
    """``env``: an environment variable; ``prefect_block``: a Prefect Secret block."""
    name: str
    """The variable's or the block's name."""

    def describe(self) -> str:
        """Where the secret is, for messages (never what it is)."""
        if self.kind == "env":
            return f"environment variable {self.name}"
        return f"Prefect Secret block {self.name!r}"


class Credentials(NamedTuple):
    """A login; ``password`` stays a SecretStr until the adapter puts it on the wire."""

    username: str
    password: SecretStr


def reveal(ref: SecretRef, purpose: str) -> SecretStr:
    """The secret ``ref`` points at. ``purpose`` names what needs it ("password of
    registry https://...") in the error when it is not there."""
    if ref.kind == "env":
        value = os.environ.get(ref.name)
        if not value:
            raise ConfigurationError(f"{purpose}: {ref.describe()} is not set")
        return SecretStr(value)
    return _prefect_secret(ref, purpose)


def _prefect_secret(ref: SecretRef, purpose: str) -> SecretStr:
    # Imported here: the library needs Prefect's client only when a block is referenced.
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(ref.name, _sync=True)
    except (ValueError, RuntimeError, OSError) as exc:
        # Prefect's message names the block, never a value; keep only its kind.
        raise ConfigurationError(
            f"{purpose}: {ref.describe()} could not be read ({type(exc).__name__})"
        ) from None
    value = block.get()
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{purpose}: {ref.describe()} holds no string")
    return SecretStr(value)


def default_docker_config() -> Path:
    """Where ``docker login`` writes: ``$DOCKER_CONFIG/config.json`` or ``~/.docker``."""
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"


def docker_config_credentials(path: Path, registry_host: str, purpose: str
                              ) -> Credentials | None:
    """The ``auths`` entry of ``registry_host`` (``host:port``) in a Docker ``config.json``;
    None when the file or the entry is not there. Credential helpers (``credsStore``) are
    not run: a helper is an arbitrary program, and CI writes plain ``auths``."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise ConfigurationError(f"{purpose}: {path} is not a readable Docker config") from None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return None
    entry = _auth_entry(auths, registry_host)
    return _entry_credentials(entry, path, purpose) if entry is not None else None


def _auth_entry(auths: dict[str, object], registry_host: str) -> dict[str, object] | None:
    # `docker login host:port` keys the entry by host:port; older clients by a URL.
    for key, entry in auths.items():
        host = key.removeprefix("https://").removeprefix("http://").split("/")[0]
        if host == registry_host and isinstance(entry, dict):
            return entry
    return None


def _entry_credentials(entry: dict[str, object], path: Path, purpose: str) -> Credentials:
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str):
        return Credentials(username, SecretStr(password))
    encoded = entry.get("auth")
    try:
        decoded = base64.b64decode(str(encoded), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    user, sep, secret = decoded.partition(":")
    if not sep or not user:
        raise ConfigurationError(f"{purpose}: the auths entry in {path} is not user:password")
    return Credentials(user, SecretStr(secret))
