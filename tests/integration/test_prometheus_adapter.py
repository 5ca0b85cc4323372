"""The Prometheus adapter against the real server: no data is None, a dead server is a
transient error, a bad query is a configuration error."""

from __future__ import annotations

import socket

import pytest

from runbook.adapters.prometheus import RouterMetrics
from runbook.errors import ConfigurationError, TransientError
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack


def test_unknown_revision_has_no_data(stack_settings: StackSettings) -> None:
    metrics = RouterMetrics(stack_settings.prometheus_url)
    assert metrics.requests("nobody.staging", "blue-000000000000", 30) is None
    assert metrics.avg_response_time_s("nobody.staging", "blue-000000000000") is None


def test_router_series_are_scraped(stack_settings: StackSettings) -> None:
    metrics = RouterMetrics(stack_settings.prometheus_url)
    # The stats frontend always exists, so the exporter's own series must be there.
    assert metrics._scalar('max(up{job="router"})') == 1.0


def test_unreachable_prometheus_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics = RouterMetrics(f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(TransientError, match="prometheus unreachable"):
        metrics.requests("a.staging", "blue-x", 30)


def test_rejected_query_is_a_configuration_error(stack_settings: StackSettings) -> None:
    metrics = RouterMetrics(stack_settings.prometheus_url)
    with pytest.raises(ConfigurationError, match="rejected"):
        metrics._scalar("sum(")
