"""Application metrics of the daily health report, per route (pure): error rate and
average response time over the day, from the router's series. No data is ``None``,
never zero: a route without traffic is "no data", not a healthy 0 %."""

from __future__ import annotations

from pydantic import BaseModel

PREVIEW_SUFFIX = ".preview"


class RouteMetrics(BaseModel):
    route: str
    """``<service>.<environment>``, the router's proxy name."""
    requests: float | None
    errors: float | None
    error_rate: float | None
    avg_response_time_s: float | None


def production_routes(proxies: list[str]) -> list[str]:
    """The routes serving an environment's traffic: preview proxies only carry the perf
    stage's load against candidates, not what users saw."""
    return sorted({p for p in proxies if "." in p and not p.endswith(PREVIEW_SUFFIX)})


def route_metrics(route: str, requests: float | None, errors: float | None,
                  avg_response_time_s: float | None) -> RouteMetrics:
    """One route's day: the error rate needs requests; none means no data."""
    rate = None
    if requests and errors is not None:
        rate = errors / requests
    return RouteMetrics(route=route, requests=requests, errors=errors, error_rate=rate,
                        avg_response_time_s=avg_response_time_s)
