"""Making a new secret value: built-in generators or a rotator plugin."""

from __future__ import annotations

import importlib
import secrets
import string
from collections.abc import Callable

from runbook.errors import ConfigurationError
from runbook.secrets.spec import Generator, SecretSpec

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 24
TOKEN_BYTES = 32


def new_value(spec: SecretSpec, current: str | None) -> str:
    """A fresh value for ``spec``; the separator never appears in it (lists stay parseable)."""
    if spec.rotator is not None:
        value = _plugin(spec.rotator)(current)
    elif spec.generator is Generator.PASSWORD:
        value = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))
    elif spec.generator is Generator.TOKEN:
        value = secrets.token_urlsafe(TOKEN_BYTES)
    else:
        raise ConfigurationError(f"secret {spec.name}: no generator or rotator to make a value")
    if not value or "," in value:
        raise ConfigurationError(f"secret {spec.name}: rotator returned an empty value or one "
                                 "containing ','")
    return value


def _plugin(path: str) -> Callable[[str | None], str]:
    module, _, function = path.partition(":")
    try:
        return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"rotator {path}: {exc}") from exc
