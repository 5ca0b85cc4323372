"""Prometheus: the router's per-revision request, error and latency series.

HAProxy's exporter labels every series with ``proxy`` (the route's backend) and ``server``
(one revision in one color), so these queries measure exactly one revision. No data comes
back as ``None``, never as zero: the verdict treats it as missing, not as healthy.
"""

from __future__ import annotations

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from runbook.adapters.access import refusal, transport_error
from runbook.errors import ConfigurationError, TransientError
from runbook.infra import HttpService, bearer_token, credentials

QUERY_TIMEOUT_S = 5


class RouterMetrics:
    """Queries over the router's series for one backend server. ``service`` (from
    :func:`runbook.infra.resolve`) carries the login and CA of a Prometheus that is not
    the local stack's; its URL wins over ``url``."""

    def __init__(self, url: str, timeout_s: float = QUERY_TIMEOUT_S, *,
                 service: HttpService | None = None) -> None:
        self._url = service.url if service else url
        self._label = service.label if service else f"prometheus {url}"
        self._timeout_s = timeout_s
        self._session = authenticated_session(service)
        self._who = _who(service)
        # The client's own retries hide a down Prometheus for ~6 s per call; the analysis
        # loop has its own error budget, so it must see each failure at once.
        self._client = PrometheusConnect(url=self._url, timeout=timeout_s, retry=Retry(total=0),
                                         session=self._session)

    @classmethod
    def of(cls, service: HttpService, timeout_s: float = QUERY_TIMEOUT_S) -> RouterMetrics:
        return cls(service.url, timeout_s, service=service)

    def check(self) -> None:
        """One authenticated request (build info): the preflight's probe. Raises
        :class:`ConfigurationError` (login, TLS) or :class:`TransientError` (unreachable)."""
        try:
            # verify explicitly: requests lets REQUESTS_CA_BUNDLE override a session's CA.
            response = self._session.get(f"{self._url}/api/v1/status/buildinfo",
                                         timeout=self._timeout_s, verify=self._session.verify)
        except requests.RequestException as exc:
            raise transport_error(self._label, exc) from None
        if response.status_code in (401, 403):
            raise ConfigurationError(refusal(self._label, response.status_code, self._who))
        if response.status_code >= 500:
            raise TransientError(f"{self._label} answered {response.status_code}")
        if response.status_code != 200:
            raise ConfigurationError(f"{self._label}: answered {response.status_code} to its "
                                     "API's build info: is this a Prometheus?")

    def requests(self, proxy: str, server: str, range_s: int) -> float | None:
        selector = _selector(proxy, server)
        return self._scalar(
            f"sum(increase(haproxy_server_http_responses_total{{{selector}}}[{range_s}s]))"
            f" + {self._errors_expr(selector, range_s)}"
        )

    def errors(self, proxy: str, server: str, range_s: int) -> float | None:
        selector = _selector(proxy, server)
        return self._scalar(
            "sum(increase(haproxy_server_http_responses_total"
            f'{{{selector},code="5xx"}}[{range_s}s])) + {self._errors_expr(selector, range_s)}'
        )

    def avg_response_time_s(self, proxy: str, server: str) -> float | None:
        """HAProxy's running average over the server's last (up to 1024) responses."""
        return self._scalar(
            f"max(haproxy_server_response_time_average_seconds{{{_selector(proxy, server)}}})"
        )

    @staticmethod
    def _errors_expr(selector: str, range_s: int) -> str:
        # Requests that never got an HTTP response from the revision (refused, reset).
        return (
            f"sum(increase(haproxy_server_connection_errors_total{{{selector}}}[{range_s}s]))"
            f" + sum(increase(haproxy_server_response_errors_total{{{selector}}}[{range_s}s]))"
        )

    def scalar(self, query: str) -> float | None:
        """The first value of an instant query; None when there is no data."""
        return self._scalar(query)

    def single_value(self, query: str) -> float | None:
        """The value of a query meant to return one series (a check's ``result``); None
        when there is none. More than one series is a query to fix, not a value to guess
        (ConfigurationError)."""
        result = self._query(query)
        if len(result) > 1:
            raise ConfigurationError(
                f"query returned {len(result)} series; aggregate it to one (sum, max, ...)"
            )
        return _value(result[0]) if result else None

    def label_sets(self, query: str) -> list[dict[str, str]]:
        """The label sets of an instant query's series (e.g. to discover routes)."""
        return [series["metric"] for series in self._query(query)]

    def _query(self, query: str) -> list[dict]:  # type: ignore[type-arg]
        try:
            return self._client.custom_query(query)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError) as exc:
            raise TransientError(f"prometheus unreachable: {type(exc).__name__}") from exc
        except PrometheusApiClientException as exc:
            if "HTTP Status Code 5" in str(exc):
                raise TransientError(f"prometheus error: {exc}") from exc
            raise ConfigurationError(f"prometheus rejected {query!r}: {exc}") from exc

    def _scalar(self, query: str) -> float | None:
        result = self._query(query)
        if not result:
            return None
        return _value(result[0])


def _value(series: dict) -> float | None:  # type: ignore[type-arg]
    value = float(series["value"][1])
    return None if value != value else value  # NaN is no data


def authenticated_session(service: HttpService | None) -> requests.Session:
    """A requests session carrying ``service``'s login (basic or bearer) and CA; the
    secret is read now and lives only in the session."""
    session = requests.Session()
    if service is None:
        return session
    session.verify = service.verify
    login = credentials(service)
    if login is not None:
        session.auth = (login.username, login.password.get_secret_value())
    token = bearer_token(service)
    if token is not None:
        session.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    return session


def _who(service: HttpService | None) -> str | None:
    if service is None or (not service.username and service.bearer_token is None):
        return None
    return f"user {service.username}" if service.username else "the bearer token"


def _selector(proxy: str, server: str) -> str:
    return f'proxy="{escape(proxy)}",server="{escape(server)}"'


def escape(value: str) -> str:
    """A label value quoted safely inside a PromQL selector."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
