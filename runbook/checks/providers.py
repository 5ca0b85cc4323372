"""The I/O half of a check: render its template, read the value, report what came back.

Every provider turns a failure of its source into ``Observation.error`` (an Error
measurement, counted against ``consecutive_error_limit``), never into an exception, so one
broken check cannot stop the analysis of the others. Judging is :func:`runbook.analysis.judge`.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable, Mapping

import httpx
import jsonpath

from runbook.adapters.prometheus import RouterMetrics, escape
from runbook.analysis import Observation
from runbook.checks import templates
from runbook.checks.model import MetricCheck, Provider
from runbook.errors import RunbookError

OUTPUT_LIMIT = 4096
"""Bytes of a command's stdout kept (a check reads a value, not a log)."""


class Providers:
    """One instance per analysis: a Prometheus client, an HTTP client, the traffic window."""

    def __init__(self, prometheus: RouterMetrics, http: httpx.Client,
                 traffic_latency: Callable[[float], float | None] = lambda _: None) -> None:
        self.prometheus = prometheus
        self.http = http
        self.traffic_latency = traffic_latency

    def observe(self, check: MetricCheck, variables: Mapping[str, str],
                since: float) -> Observation:
        """Measure ``check`` now; ``since`` (monotonic) starts the traffic window."""
        if check.provider is Provider.PROMETHEUS:
            return self._prometheus(templates.render(check.query, variables, escape))
        if check.provider is Provider.WEB:
            return self._web(check, templates.render(check.url, variables))
        if check.provider is Provider.COMMAND:
            argv = [templates.render(part, variables) for part in check.command]
            return _command(argv, check.timeout_s)
        return Observation(query=f"traffic {check.query}", result=self.traffic_latency(since))

    def _prometheus(self, query: str) -> Observation:
        try:
            return Observation(query=query, result=self.prometheus.single_value(query))
        except RunbookError as exc:
            return Observation(query=query, error=str(exc))

    def _web(self, check: MetricCheck, url: str) -> Observation:
        try:
            response = self.http.get(url, timeout=check.timeout_s)
        except httpx.HTTPError as exc:
            return Observation(query=url, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        status = response.status_code
        if check.json_path is None:
            return Observation(query=url, result=status, values={"status": status})
        try:
            found = jsonpath.findall(check.json_path, json.loads(response.content))
        except (ValueError, jsonpath.JSONPathError) as exc:
            return Observation(query=url, values={"status": status},
                               error=f"HTTP {status}, no JSON value at {check.json_path}: {exc}")
        value = _scalar(found[0]) if found else None
        return Observation(query=f"{url} {check.json_path}", result=value,
                           values={"status": status})


def _command(argv: list[str], timeout_s: float) -> Observation:
    shown = " ".join(argv)
    try:
        completed = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Observation(query=shown, error=f"{type(exc).__name__}: {exc}")
    stdout = completed.stdout[:OUTPUT_LIMIT].decode(errors="replace").strip()
    number = _number(stdout)
    return Observation(query=shown, result=completed.returncode if number is None else number,
                       values={"exit_code": completed.returncode, "stdout": stdout})


def _scalar(value: object) -> float | str | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        number = _number(value)
        return value if number is None else number
    return None if value is None else json.dumps(value)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
