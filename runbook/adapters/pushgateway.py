"""Prometheus Pushgateway: the pipeline's run metrics, one group per service and environment.

The Pushgateway keeps only the last push of a group, so counters are read back, added to and
pushed whole (PUT replaces the group). Runs of one service and environment rarely finish in
the same second; if they do, one run's increment can be lost, never double-counted. The
group's very first run is not seen by increase() (it creates the series); every later one is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import push_to_gateway
from prometheus_client.parser import text_string_to_metric_families

from runbook.adapters.access import httpx_verify, refusal, transport_error, who
from runbook.errors import ConfigurationError, RunbookError, TransientError
from runbook.infra import HttpService, credentials
from runbook.models import Outcome
from runbook.run_metrics import RunSample

JOB = "runbook_pipeline"


def push(url: str, job: str, registry: CollectorRegistry, timeout_s: float,
         grouping_key: dict[str, str] | None = None, service: HttpService | None = None) -> None:
    """Replace ``job``'s group on the Pushgateway; 5xx and unreachable are transient.
    ``service`` carries the login and CA of a gateway that is not the local stack's."""
    push_to_gateway(service.url if service else url, job, registry,
                    grouping_key=grouping_key, timeout=timeout_s, handler=_handler(service))


def _handler(service: HttpService | None) -> Callable[..., Callable[[], None]]:
    """prometheus_client's push goes through this: the configured login and CA, and the
    gateway's answers sorted into runbook's error kinds."""
    label = service.label if service else "Pushgateway"

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        def send() -> None:
            response = _send(service, label, method, url, timeout or TIMEOUT_S,
                             content=data, headers=dict(headers))
            if response.status_code >= 400:
                # The gateway says why (e.g. an inconsistent metric); its text is no secret.
                raise RunbookError(f"{label} refused the push ({response.status_code}): "
                                   f"{response.text.strip()[:300]}")
        return send
    return handler


def _send(service: HttpService | None, label: str, method: str, url: str, timeout_s: float,
          **request: object) -> httpx.Response:
    login = credentials(service) if service else None
    auth = httpx.BasicAuth(login.username, login.password.get_secret_value()) if login else None
    try:
        with httpx.Client(verify=httpx_verify(service.verify if service else True),
                          timeout=timeout_s,
                          auth=auth) as client:
            response = client.request(method, url, **request)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        raise transport_error(label, exc) from None
    if response.status_code >= 500:
        raise TransientError(f"{label} answered {response.status_code}")
    if response.status_code in (401, 403):
        raise ConfigurationError(refusal(label, response.status_code, who(login)))
    return response


TIMEOUT_S = 5.0

RUNS = "runbook_pipeline_runs"  # counter, by outcome
STAGE_RUNS = "runbook_pipeline_stage_runs"  # counter, by stage and outcome
STAGE_SECONDS = "runbook_pipeline_stage_duration_seconds"  # counter (sum), by stage, outcome
LAST_STAGE_SECONDS = "runbook_pipeline_last_stage_duration_seconds"  # gauge, last run
LAST_RUN = "runbook_pipeline_last_run_timestamp_seconds"  # gauge, by outcome of that run

# Stage outcomes whose series exist from the first push (see _RunCollector._seed_zeros).
_SEEDED_OUTCOMES = {"deploy": ("passed", "failed", "blocked")}

Counts = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Pushgateway:
    """Pushes one run's sample into its service/environment group."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S, *,
                 service: HttpService | None = None) -> None:
        self.url = (service.url if service else url).rstrip("/")
        self.timeout_s = timeout_s
        self._service = service
        self._label = service.label if service else f"Pushgateway {self.url}"

    @classmethod
    def of(cls, service: HttpService, timeout_s: float = TIMEOUT_S) -> Pushgateway:
        return cls(service.url, timeout_s, service=service)

    def check(self) -> None:
        """Reach the gateway with the configured login: the preflight's probe."""
        self._get("/-/ready").raise_for_status()

    def push_run(self, sample: RunSample) -> None:
        """Add the run to the group's counters and replace the last-run gauges."""
        group = {"service": sample.service, "environment": sample.environment}
        counts = self._read_counters(group)
        registry = CollectorRegistry()
        registry.register(_RunCollector(counts, sample))
        push(self.url, JOB, registry, self.timeout_s, grouping_key=group, service=self._service)

    def _read_counters(self, group: dict[str, str]) -> Counts:
        response = self._get("/metrics")
        response.raise_for_status()
        return _counters_of_group(response.text, {"job": JOB, **group})

    def _get(self, path: str) -> httpx.Response:
        return _send(self._service, self._label, "GET", f"{self.url}{path}", self.timeout_s)


def _counters_of_group(text: str, group: dict[str, str]) -> Counts:
    counts: Counts = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (RUNS, STAGE_RUNS, STAGE_SECONDS):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if any(sample.labels.get(k) != v for k, v in group.items()):
                continue
            own = tuple(sorted((k, v) for k, v in sample.labels.items()
                               if k not in group and k != "instance"))
            counts[(family.name, own)] = sample.value
    return counts


class _RunCollector:
    """The group's metrics after this run: previous counters plus this run."""

    def __init__(self, counts: Counts, sample: RunSample) -> None:
        self.counts = dict(counts)
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        self._seed_zeros()
        self._add(RUNS, {"outcome": self.sample.outcome}, 1)
        for stage in self.sample.stages:
            labels = {"stage": stage.stage, "outcome": stage.outcome}
            self._add(STAGE_RUNS, labels, 1)
            self._add(STAGE_SECONDS, labels, stage.duration_s)
        yield from self._counter(RUNS, "Pipeline runs by outcome.", ["outcome"])
        yield from self._counter(STAGE_RUNS, "Stage runs by outcome.", ["stage", "outcome"])
        yield from self._counter(STAGE_SECONDS, "Seconds spent in stages, summed over runs.",
                                 ["stage", "outcome"])
        last = GaugeMetricFamily(LAST_STAGE_SECONDS, "Stage durations of the last run.",
                                 labels=["stage", "outcome"])
        for stage in self.sample.stages:
            last.add_metric([stage.stage, stage.outcome], stage.duration_s)
        yield last
        finished = GaugeMetricFamily(LAST_RUN, "When the last run finished, by its outcome.",
                                     labels=["outcome"])
        finished.add_metric([self.sample.outcome], self.sample.finished_at_s)
        yield finished

    def _seed_zeros(self) -> None:
        """Every outcome's series exists from the group's first push on, at 0: Prometheus'
        increase() cannot see the increment that creates a series, so a first failure
        must find its series already there."""
        for outcome in Outcome:
            self._add(RUNS, {"outcome": outcome.value}, 0)
        for stage in self.sample.stages:
            for outcome in _SEEDED_OUTCOMES.get(stage.stage, ("passed", "failed")):
                labels = {"stage": stage.stage, "outcome": outcome}
                self._add(STAGE_RUNS, labels, 0)
                self._add(STAGE_SECONDS, labels, 0)

    def _add(self, name: str, labels: dict[str, str], value: float) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.counts[key] = self.counts.get(key, 0.0) + value

    def _counter(self, name: str, documentation: str, labels: list[str]) -> Iterable[Metric]:
        family = CounterMetricFamily(name, documentation, labels=labels)
        for (metric, own), value in sorted(self.counts.items()):
            if metric == name:
                values = dict(own)
                family.add_metric([values.get(label, "") for label in labels], value)
        yield family
