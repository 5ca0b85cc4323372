"""The istio and linkerd presets judged on the real Prometheus: series in exactly those
exporters' formats (names, labels, units) pushed through the Pushgateway, growing like live
counters, then measured with the standard checks' own queries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from runbook.adapters.prometheus import RouterMetrics
from runbook.analysis import Phase, judge
from runbook.checks.model import MetricCheck, StandardSource
from runbook.checks.providers import Providers
from runbook.checks.standard import Convention, default_checks
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
PUSHES = 4
PUSH_EVERY_S = 2.5
RPS = 20


Workload = tuple[str, float, float]
"""(name, error rate, latency in ms)."""


def istio(workloads: list[Workload], namespace: str, t: float) -> str:
    """Istio's standard metrics as the sidecar's Prometheus endpoint exports them."""
    def labels(workload: str) -> str:
        return (f'reporter="destination",source_workload="loadgen",source_workload_namespace='
                f'"{namespace}",destination_workload="{workload}",destination_workload_'
                f'namespace="{namespace}",destination_service="{workload}.{namespace}.svc.'
                'cluster.local",request_protocol="http",connection_security_policy="mutual_tls"')
    return _families(workloads, t, labels, "istio_requests_total", "response_code",
                     ("200", "503"), None, "istio_request_duration_milliseconds",
                     ("25", "100", "1000", "10000", "+Inf"))


def linkerd(workloads: list[Workload], namespace: str, t: float) -> str:
    """The Linkerd proxy's inbound response series."""
    def labels(deployment: str) -> str:
        return (f'direction="inbound",namespace="{namespace}",deployment="{deployment}",'
                f'pod="{deployment}-5d8f7c9b4-x2x7q",tls="true",target_addr="10.0.0.7:8080"')
    return _families(workloads, t, labels, "response_total", "status_code", ("200", "500"),
                     ("success", "failure"), "response_latency_ms",
                     ("10", "100", "1000", "10000", "+Inf"))


def _families(workloads: list[Workload], t: float, labels: Callable[[str], str], counter: str,
              code_label: str, codes: tuple[str, str], classes: tuple[str, str] | None,
              histogram: str, buckets: tuple[str, ...]) -> str:
    lines = [f"# TYPE {counter} counter"]
    for name, error_rate, _ in workloads:
        total = RPS * t
        for code, share, klass in zip(codes, (1 - error_rate, error_rate), classes or ("", ""),
                                      strict=True):
            extra = f',classification="{klass}"' if klass else ""
            lines.append(f'{counter}{{{labels(name)},{code_label}="{code}"{extra}}} '
                         f"{total * share}")
    lines.append(f"# TYPE {histogram} histogram")
    for name, _, latency_ms in workloads:
        total = RPS * t
        selector = f'{labels(name)},{code_label}="200"'
        for le in buckets:
            count = total if le == "+Inf" or float(le) >= latency_ms else 0
            lines.append(f'{histogram}_bucket{{{selector},le="{le}"}} {count}')
        lines += [f"{histogram}_sum{{{selector}}} {total * latency_ms}",
                  f"{histogram}_count{{{selector}}} {total}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def namespace(stack_settings: StackSettings) -> Iterator[str]:
    name = f"mesh-{uuid.uuid4().hex[:6]}"
    yield name
    for mesh in ("istio", "linkerd"):
        httpx.delete(f"{stack_settings.pushgateway_url}/metrics/job/{name}-{mesh}", timeout=5)


def push_for_a_while(settings: StackSettings, namespace: str) -> None:
    """Good blue, bad green (30 % 5xx, 6 s), counters growing as under real traffic."""
    for step in range(1, PUSHES + 1):
        t = step * PUSH_EVERY_S
        workloads = [("shop-blue", 0.0, 20.0), ("shop-green", 0.3, 6000.0)]
        for mesh, render in (("istio", istio), ("linkerd", linkerd)):
            httpx.put(f"{settings.pushgateway_url}/metrics/job/{namespace}-{mesh}",
                      content=render(workloads, namespace, t), timeout=5).raise_for_status()
        time.sleep(PUSH_EVERY_S)


@pytest.mark.parametrize("source", [StandardSource.ISTIO, StandardSource.LINKERD])
def test_presets_judge_good_and_bad_workloads_on_real_prometheus(
    stack_settings: StackSettings, namespace: str, source: StandardSource
) -> None:
    push_for_a_while(stack_settings, namespace)
    checks = [c for c in default_checks(
        source=source, convention=Convention.CLASSIC, health_path="/health",
        rollback_error_rate=0.05, rollback_avg_latency_s=5.0, min_requests=5,
        failure_limit=0, inconclusive_limit=0, consecutive_error_limit=2,
    ) if c.name in ("error-rate", "avg-latency")]

    def measure(color: str) -> dict[str, tuple[Phase, object]]:
        variables = {"service": "shop", "environment": "production", "revision": "r1",
                     "color": color, "namespace": namespace, "interval": "8s",
                     "endpoint": "http://unused"}
        with httpx.Client() as http:
            providers = Providers(RouterMetrics(stack_settings.prometheus_url), http)
            results = {}
            for check in checks:
                result = judge(check, providers.observe(check, variables, 0.0), 1.0)
                results[check.name] = (result.phase, result.value)
        return results

    good, bad = measure("blue"), measure("green")
    assert good["error-rate"] == (Phase.SUCCESSFUL, 0.0), good
    assert good["avg-latency"][0] is Phase.SUCCESSFUL
    assert good["avg-latency"][1] == pytest.approx(0.020)
    assert bad["error-rate"][0] is Phase.FAILED
    assert bad["error-rate"][1] == pytest.approx(0.3)
    assert bad["avg-latency"][0] is Phase.FAILED
    assert bad["avg-latency"][1] == pytest.approx(6.0)


def test_a_workload_without_series_is_no_data(stack_settings: StackSettings) -> None:
    check: MetricCheck = default_checks(
        source=StandardSource.ISTIO, convention=Convention.CLASSIC, health_path="/health",
        rollback_error_rate=0.05, rollback_avg_latency_s=5.0, min_requests=5,
        failure_limit=0, inconclusive_limit=0, consecutive_error_limit=2)[1]
    variables = {"service": "absent", "environment": "production", "revision": "r1",
                 "color": "blue", "namespace": "nowhere", "interval": "8s", "endpoint": ""}
    with httpx.Client() as http:
        observed = Providers(RouterMetrics(stack_settings.prometheus_url), http).observe(
            check, variables, 0.0)
    assert judge(check, observed, 1.0).phase is Phase.INCONCLUSIVE
