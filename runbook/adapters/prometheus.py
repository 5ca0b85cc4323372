"""Prometheus: the router's per-revision request, error and latency series.

HAProxy's exporter labels every series with ``proxy`` (the route's backend) and ``server``
(one revision in one color), so these queries measure exactly one revision. No data comes
back as ``None``, never as zero: the verdict treats it as missing, not as healthy.
"""

from __future__ import annotations

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from runbook.errors import ConfigurationError, TransientError

QUERY_TIMEOUT_S = 5


class RouterMetrics:
    """Queries over the router's series for one backend server."""

    def __init__(self, url: str, timeout_s: float = QUERY_TIMEOUT_S) -> None:
        # The client's own retries hide a down Prometheus for ~6 s per call; the analysis
        # loop has its own error budget, so it must see each failure at once.
        self._client = PrometheusConnect(url=url, timeout=timeout_s, retry=Retry(total=0))

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


def _selector(proxy: str, server: str) -> str:
    return f'proxy="{escape(proxy)}",server="{escape(server)}"'


def escape(value: str) -> str:
    """A label value quoted safely inside a PromQL selector."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
