"""Prometheus: the day's request, error and latency figures of each router route.

HAProxy's exporter labels series ``proxy="<service>.<environment>"`` (preview routes end in
``.preview``); every revision of a route is a ``server`` of it, so a route's day sums over
servers. Queries go through :class:`~runbook.adapters.prometheus.RouterMetrics` (timeouts,
error sorting, no data as None).
"""

from __future__ import annotations

from runbook.adapters.prometheus import QUERY_TIMEOUT_S, RouterMetrics, escape
from runbook.ops.app_metrics import RouteMetrics, production_routes, route_metrics

RESPONSES = "haproxy_server_http_responses_total"


def discover_routes(url: str, range_s: int, timeout_s: float = QUERY_TIMEOUT_S) -> list[str]:
    """Routes with any response series in the last ``range_s`` (preview routes left out)."""
    query = f"count by (proxy) (last_over_time({RESPONSES}[{range_s}s]))"
    series = RouterMetrics(url, timeout_s).label_sets(query)
    return production_routes([labels.get("proxy", "") for labels in series])


def day_metrics(url: str, routes: list[str], range_s: int) -> list[RouteMetrics]:
    """Requests, errors (5xx and responses never received) and the average response time
    of each route over the last ``range_s``."""
    metrics = RouterMetrics(url)
    found = []
    for route in routes:
        selector = f'proxy="{escape(route)}"'
        never_answered = (
            f"sum(increase(haproxy_server_connection_errors_total{{{selector}}}[{range_s}s]))"
            f" + sum(increase(haproxy_server_response_errors_total{{{selector}}}[{range_s}s]))")
        requests = metrics.scalar(
            f"sum(increase({RESPONSES}{{{selector}}}[{range_s}s])) + {never_answered}")
        errors = metrics.scalar(
            f'sum(increase({RESPONSES}{{{selector},code="5xx"}}[{range_s}s])) + {never_answered}')
        # A server without responses reports 0 s: not a fast answer, so left out.
        average = metrics.scalar(
            "avg(avg_over_time(haproxy_server_response_time_average_seconds"
            f"{{{selector}}}[{range_s}s]) > 0)")
        found.append(route_metrics(route, requests, errors, average))
    return found

