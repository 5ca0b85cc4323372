"""The runbook's rollback rules as checks: health, error rate > 5 %, average > 5 s.

Each source's standard queries select exactly one revision and judge one interval
(``[{{interval}}]``); the error rate is no data below the minimum number of requests in the
interval, so a quiet interval is inconclusive, never a pass.
"""

from __future__ import annotations

from enum import StrEnum

from runbook.checks.model import MetricCheck, NoData, Provider, StandardSource


class Convention(StrEnum):
    """How the service's own HTTP metrics are named (``app`` source)."""

    CLASSIC = "classic"
    """prometheus-client style: ``http_requests_total{code}`` and the
    ``http_request_duration_seconds`` summary or histogram (``_sum`` / ``_count``)."""
    OPENTELEMETRY = "opentelemetry"
    """OpenTelemetry HTTP semantic conventions as Prometheus exports them:
    ``http_server_request_duration_seconds`` histogram with ``http_response_status_code``."""


HEALTH = "health"
ERROR_RATE = "error-rate"
AVG_LATENCY = "avg-latency"
TRAFFIC_LATENCY = "traffic-latency"
STANDARD_NAMES = (HEALTH, ERROR_RATE, AVG_LATENCY, TRAFFIC_LATENCY)

_APP_LABELS = ('service="{{service}}",environment="{{environment}}",'
               'color="{{color}}",revision="{{revision}}"')


def _increase(metric: str, labels: str, extra: str = "") -> str:
    selector = f"{labels},{extra}" if extra else labels
    return f"sum(increase({metric}{{{selector}}}[{{{{interval}}}}]))"


def _or_zero(expr: str) -> str:
    # A counter with no 5xx series yet is zero errors, not missing data.
    return f"({expr} or on() vector(0))"


def _ratio_with_minimum(errors: str, requests: str, min_requests: int) -> str:
    return f"({errors}) / ({requests}) and on() (({requests}) >= {min_requests})"


_ROUTER_LABELS = 'proxy="{{service}}.{{environment}}",server="{{color}}-{{revision}}"'
_ISTIO_LABELS = ('reporter="destination",destination_workload="{{service}}-{{color}}",'
                 'destination_workload_namespace="{{namespace}}"')
_LINKERD_LABELS = ('direction="inbound",deployment="{{service}}-{{color}}",'
                   'namespace="{{namespace}}"')


def request_series(source: StandardSource, convention: Convention) -> tuple[str, str]:
    """(request counter, label matchers of one revision) of a source, as templates."""
    if source is StandardSource.ROUTER:
        return "haproxy_server_http_responses_total", _ROUTER_LABELS
    if source is StandardSource.APP and convention is Convention.CLASSIC:
        return "http_requests_total", _APP_LABELS
    if source is StandardSource.APP:
        return "http_server_request_duration_seconds_count", _APP_LABELS
    if source is StandardSource.ISTIO:
        return "istio_requests_total", _ISTIO_LABELS
    return "response_total", _LINKERD_LABELS


def series_query(source: StandardSource, convention: Convention) -> str:
    """A template that has a value once Prometheus has scraped the revision's request
    counter at least twice inside ``{{interval}}``: from then on increase() over an
    interval has data. Until then the revision's target is still being discovered and
    first scraped (Prometheus applies discovery changes every 5 s, then scrapes at its
    interval: ~8 s for a new route here, a minute with a 30 s scrape interval), and a
    measurement would only read "no data"."""
    metric, labels = request_series(source, convention)
    return f"count(count_over_time({metric}{{{labels}}}[{{{{interval}}}}]) >= 2)"


def request_queries(source: StandardSource, convention: Convention,
                    min_requests: int) -> tuple[str, str]:
    """(error-rate query, average-latency query) of one revision, as templates."""
    metric, labels = request_series(source, convention)
    if source is StandardSource.ROUTER:
        unanswered = (f"{_increase('haproxy_server_connection_errors_total', labels)} + "
                      f"{_increase('haproxy_server_response_errors_total', labels)}")
        requests = f"{_increase(metric, labels)} + {unanswered}"
        server_errors = _increase(metric, labels, 'code="5xx"')
        errors = f"{server_errors} + {unanswered}"
        # HAProxy keeps a running average over the server's last 1024 responses: the
        # windowed view of latency is the verification traffic's check.
        latency = f"max(haproxy_server_response_time_average_seconds{{{labels}}})"
        return _ratio_with_minimum(errors, requests, min_requests), latency
    if source is StandardSource.APP and convention is Convention.CLASSIC:
        return _counters(metric, 'code=~"5.."', labels, min_requests,
                         "http_request_duration_seconds", 1.0)
    if source is StandardSource.APP:
        return _counters(metric, 'http_response_status_code=~"5.."', labels, min_requests,
                         "http_server_request_duration_seconds", 1.0)
    if source is StandardSource.ISTIO:
        return _counters(metric, 'response_code=~"5.."', labels, min_requests,
                         "istio_request_duration_milliseconds", 1000.0)
    return _counters(metric, 'classification="failure"', labels, min_requests,
                     "response_latency_ms", 1000.0)


def _counters(requests_metric: str, error_matcher: str, labels: str, min_requests: int,
              duration: str, per_second: float) -> tuple[str, str]:
    requests = _increase(requests_metric, labels)
    errors = _or_zero(_increase(requests_metric, labels, error_matcher))
    latency = f"{_increase(f'{duration}_sum', labels)} / {_increase(f'{duration}_count', labels)}"
    if per_second != 1.0:
        latency = f"({latency}) / {per_second:g}"
    return _ratio_with_minimum(errors, requests, min_requests), latency


def default_checks(
    *, source: StandardSource, convention: Convention, health_path: str,
    rollback_error_rate: float, rollback_avg_latency_s: float, min_requests: int,
    failure_limit: int, inconclusive_limit: int, consecutive_error_limit: int,
) -> list[MetricCheck]:
    """The runbook's rules for one source, in the declared form; limits from the policy."""
    limits = dict(failure_limit=failure_limit, inconclusive_limit=inconclusive_limit,
                  consecutive_error_limit=consecutive_error_limit)
    error_rate, latency = request_queries(source, convention, min_requests)
    return [
        MetricCheck(name=HEALTH, provider=Provider.WEB, url="{{endpoint}}" + health_path,
                    success_condition="status >= 200 and status < 300", **limits),
        MetricCheck(name=ERROR_RATE, provider=Provider.PROMETHEUS, query=error_rate,
                    failure_condition=f"result > {rollback_error_rate:g}",
                    no_data=NoData.INCONCLUSIVE, **limits),
        MetricCheck(name=AVG_LATENCY, provider=Provider.PROMETHEUS, query=latency,
                    failure_condition=f"result > {rollback_avg_latency_s:g}", **limits),
        MetricCheck(name=TRAFFIC_LATENCY, provider=Provider.TRAFFIC, query="avg_latency_s",
                    failure_condition=f"result > {rollback_avg_latency_s:g}", **limits),
    ]
