"""How the HTTP adapters log in and sort what a server says about it, in one place: a
refused login, a 403 or an untrusted certificate is configuration (a person must fix it,
retrying cannot), an unreachable server is transient. Messages name the part and the user,
never a password or token."""

from __future__ import annotations

import base64
import ssl

from runbook.errors import ConfigurationError, RunbookError, TransientError
from runbook.secretref import Credentials


def httpx_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx's form of a ``verify`` setting: a CA file becomes an SSL context."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def basic_header(login: Credentials) -> str:
    """``Authorization`` value for HTTP basic auth."""
    pair = f"{login.username}:{login.password.get_secret_value()}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def who(login: Credentials | None = None, token: bool = False) -> str | None:
    """How a refusal names the login: ``user ci``, ``the bearer token``, None (anonymous)."""
    if login is not None:
        return f"user {login.username}"
    return "the bearer token" if token else None


def refusal(label: str, status: int, who: str | None) -> str:
    """One line for a 401 / 403: whose login, never its password."""
    if status == 403:
        return f"{label}: access denied (403) for {who or 'anonymous access'}"
    if who is None:
        return f"{label}: authentication required (401): configure username and password_env"
    return f"{label}: authentication failed (401) for {who}"


def tls_problem(label: str, exc: BaseException) -> ConfigurationError | None:
    """A certificate error anywhere in ``exc``'s chain, as configuration; else None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ConfigurationError(
                f"{label}: TLS certificate not trusted ({cause.verify_message})",
                hint="set ca_file to the CA that signed it",
                reference="README.md#use-your-own-infrastructure")
        if isinstance(cause, ssl.SSLError):
            return ConfigurationError(f"{label}: TLS handshake failed ({cause.reason})")
        nested = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) \
            else None
        cause = cause.__cause__ or cause.__context__ or nested
    return None


def transport_error(label: str, exc: BaseException) -> RunbookError:
    """An untrusted certificate is configuration (set ``ca_file``); anything else on the
    way (refused, reset, timeout) may pass and is transient."""
    return tls_problem(label, exc) or TransientError(
        f"{label} unreachable: {type(exc).__name__}: {_short(exc)}")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
