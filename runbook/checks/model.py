"""A metric check as ``service.yaml`` declares it, shaped like an Argo Rollouts ``Metric``.

Everything is validated at load time: an unknown template variable or a condition that does
not parse is a ``service.yaml`` error naming the metric, never a surprise mid-release.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runbook.checks import conditions, templates


class Provider(StrEnum):
    PROMETHEUS = "prometheus"
    """``query`` is PromQL; ``result`` is the value of its one series (aggregate to one)."""
    WEB = "web"
    """``url`` is fetched; ``result`` is the ``json_path`` value of the JSON body, or the
    HTTP status when no ``json_path`` is given; ``status`` is the HTTP status."""
    COMMAND = "command"
    """``command`` is run (an argv, no shell); ``exit_code``, ``stdout`` (stripped) and
    ``result`` (stdout as a number, else the exit code) are known to the conditions."""
    TRAFFIC = "traffic"
    """The runbook's own verification traffic over the interval; ``query`` is
    ``avg_latency_s`` (its average latency, s)."""


class NoData(StrEnum):
    INCONCLUSIVE = "inconclusive"
    FAILED = "failed"


class StandardSource(StrEnum):
    """Where the standard request metrics (error rate, latency) of one revision come from."""

    ROUTER = "router"
    """HAProxy's per-server series (the docker target's router)."""
    APP = "app"
    """The service's own metrics, scraped through Prometheus service discovery and labelled
    ``service``, ``environment``, ``color``, ``revision`` from the container or pod labels."""
    ISTIO = "istio"
    """``istio_requests_total`` / ``istio_request_duration_milliseconds`` of the workload."""
    LINKERD = "linkerd"
    """Linkerd proxy ``response_total`` / ``response_latency_ms`` of the deployment."""


CONDITION_NAMES: dict[Provider, tuple[str, ...]] = {
    Provider.PROMETHEUS: ("result",),
    Provider.WEB: ("result", "status"),
    Provider.COMMAND: ("result", "exit_code", "stdout"),
    Provider.TRAFFIC: ("result",),
}
TRAFFIC_QUERIES = ("avg_latency_s",)


class MetricCheck(BaseModel):
    """One check of the live revision, measured every ``interval_s`` of the analysis."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
    """Unique among the service's checks; shown in the report and the alert."""
    provider: Provider = Provider.PROMETHEUS
    query: str = ""
    """PromQL template (prometheus) or what to read (traffic)."""
    url: str = ""
    """URL template (web)."""
    json_path: str | None = None
    """JSONPath of the value in the response body (web), e.g. ``$.queue.depth``."""
    command: list[str] = Field(default_factory=list)
    """Argv template (command), run without a shell."""
    success_condition: str | None = None
    """Expression over ``result`` (and the provider's other names) that must hold."""
    failure_condition: str | None = None
    """Expression that fails the measurement when it holds. With both conditions, a
    measurement meeting neither is inconclusive (Argo's rule)."""
    interval_s: float | None = Field(default=None, gt=0)
    """Time between measurements; unset: ``analysis.interval_s``."""
    failure_limit: int = Field(default=0, ge=0)
    """Failed measurements tolerated; one more fails the check (Argo default 0)."""
    inconclusive_limit: int = Field(default=0, ge=0)
    """Inconclusive measurements tolerated; missing data is never a pass."""
    consecutive_error_limit: int = Field(default=4, ge=0)
    """Consecutive measurement errors (source unreachable) tolerated (Argo default 4)."""
    no_data: NoData = NoData.INCONCLUSIVE
    """What a measurement without data is: inconclusive or failed, never a pass."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Deadline of one measurement (query, request or command)."""

    @model_validator(mode="after")
    def _well_formed(self) -> MetricCheck:
        try:
            self._check_source()
            self._check_conditions()
        except ValueError as exc:
            raise ValueError(f"metric {self.name!r}: {exc}") from None
        return self

    def _check_source(self) -> None:
        required = {Provider.PROMETHEUS: ("query", self.query), Provider.WEB: ("url", self.url),
                    Provider.COMMAND: ("command", self.command),
                    Provider.TRAFFIC: ("query", self.query)}[self.provider]
        if not required[1]:
            raise ValueError(f"provider {self.provider.value} needs '{required[0]}'")
        if self.provider is Provider.TRAFFIC and self.query not in TRAFFIC_QUERIES:
            raise ValueError(f"traffic query must be one of {list(TRAFFIC_QUERIES)}")
        for template in self.templates():
            unknown = templates.unknown_variables(template)
            if unknown:
                raise ValueError(
                    f"unknown template variable(s) {unknown} in {template!r}; known: "
                    + " ".join(f"{{{{{name}}}}}" for name in templates.VARIABLES)
                )

    def _check_conditions(self) -> None:
        if self.success_condition is None and self.failure_condition is None:
            raise ValueError("needs a success_condition or a failure_condition")
        for field in ("success_condition", "failure_condition"):
            expression = getattr(self, field)
            if expression is not None:
                try:
                    conditions.validate(expression, CONDITION_NAMES[self.provider])
                except conditions.ConditionError as exc:
                    raise ValueError(f"{field} {exc}") from None

    def templates(self) -> list[str]:
        return [t for t in (self.query, self.url, *self.command) if t]

    def condition_text(self) -> str:
        """Both conditions, as the report shows them."""
        parts = []
        if self.success_condition is not None:
            parts.append(f"success: {self.success_condition}")
        if self.failure_condition is not None:
            parts.append(f"failure: {self.failure_condition}")
        return "; ".join(parts)
