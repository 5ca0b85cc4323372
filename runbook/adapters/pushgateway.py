"""Prometheus Pushgateway: the pipeline's run metrics, one group per run.

Each run pushes its own group (``job``, ``service``, ``environment``, ``run``) holding only
what that run did; PromQL sums the runs that finished in a window
(``deployments/prometheus/rules/pipeline.yml``). Nothing is read back and incremented, so
concurrent runs cannot lose each other's counts, and a retried push replaces the same group
instead of counting twice. Groups older than ``RUN_RETENTION_S`` are deleted after a push,
at most every ``PRUNE_EVERY_S`` per marker file, so the gateway stays bounded.

A second group per service and environment (no ``run`` label) holds the last run's stage
durations and finish time; it is replaced whole, last writer wins, which is what "last"
means.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import delete_from_gateway, push_to_gateway

from runbook.adapters.access import httpx_verify, refusal, transport_error, who
from runbook.errors import ConfigurationError, RunbookError, TransientError
from runbook.infra import HttpService, credentials
from runbook.models import Outcome
from runbook.run_metrics import RunSample

JOB = "runbook_pipeline"
TIMEOUT_S = 5.0
RUN_RETENTION_S = 8 * 86400
"""Run groups live this long: more than the longest window a rule reads (1 day) and the
dashboard's week, with a day to spare."""
PRUNE_EVERY_S = 3600.0
"""Finding the old run groups reads the whole gateway: every group of every service, over
1 MB here after a day of test runs, 2 s of a release's end on a loaded machine. Retention
is days, so looking once an hour (per marker file) is enough."""

RUN_OUTCOME = "runbook_pipeline_run_outcome"  # 1 for the run's outcome, 0 for the others
RUN_STAGE = "runbook_pipeline_run_stage"  # 1 for each stage's outcome, 0 for the others
RUN_STAGE_SECONDS = "runbook_pipeline_run_stage_duration_seconds"  # by stage and outcome
RUN_FINISHED = "runbook_pipeline_run_finished_timestamp_seconds"
LAST_STAGE_SECONDS = "runbook_pipeline_last_stage_duration_seconds"  # last run's, by stage
LAST_RUN = "runbook_pipeline_last_run_timestamp_seconds"  # last run's finish, by outcome

# Outcomes whose series every run pushes (at 0 when not its own), so a sum over runs has a
# value, not a gap, when none of them passed (or failed).
_STAGE_OUTCOMES = ("passed", "failed")
_SEEDED_OUTCOMES = {"deploy": ("passed", "failed", "blocked")}


def push(url: str, job: str, registry: CollectorRegistry, timeout_s: float,
         grouping_key: dict[str, str] | None = None, service: HttpService | None = None) -> None:
    """Replace ``job``'s group on the Pushgateway; 5xx and unreachable are transient.
    ``service`` carries the login and CA of a gateway that is not the local stack's."""
    push_to_gateway(service.url if service else url, job, registry,
                    grouping_key=grouping_key, timeout=timeout_s, handler=_handler(service))


def _handler(service: HttpService | None) -> Callable[..., Callable[[], None]]:
    """prometheus_client's push and delete go through this: the configured login and CA,
    and the gateway's answers sorted into runbook's error kinds."""
    label = service.label if service else "Pushgateway"

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        def send() -> None:
            response = _send(service, label, method, url, timeout or TIMEOUT_S,
                             content=data, headers=dict(headers))
            if response.status_code >= 400:
                # The gateway says why (e.g. an inconsistent metric); its text is no secret.
                raise RunbookError(f"{label} refused {method} ({response.status_code}): "
                                   f"{response.text.strip()[:300]}")
        return send
    return handler


def _send(service: HttpService | None, label: str, method: str, url: str, timeout_s: float,
          **request: object) -> httpx.Response:
    login = credentials(service) if service else None
    auth = httpx.BasicAuth(login.username, login.password.get_secret_value()) if login else None
    try:
        with httpx.Client(verify=httpx_verify(service.verify if service else True),
                          timeout=timeout_s, auth=auth) as client:
            response = client.request(method, url, **request)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        raise transport_error(label, exc) from None
    if response.status_code >= 500:
        raise TransientError(f"{label} answered {response.status_code}")
    if response.status_code in (401, 403):
        raise ConfigurationError(refusal(label, response.status_code, who(login)))
    return response


class Pushgateway:
    """Pushes one run's sample as its own group, and the service's last-run gauges."""

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

    def push_run(self, sample: RunSample, prune_marker: Path | None = None) -> None:
        """The run's own group (replaced by a retry, never added twice), the service's
        last-run group, then old run groups pruned: every time without ``prune_marker``,
        else when the marker file is older than ``PRUNE_EVERY_S`` (it is touched first, so
        runs ending together mostly leave it to one)."""
        group = {"service": sample.service, "environment": sample.environment}
        push(self.url, JOB, _registry(_RunCollector(sample)), self.timeout_s,
             grouping_key={**group, "run": sample.run}, service=self._service)
        push(self.url, JOB, _registry(_LastRunCollector(sample)), self.timeout_s,
             grouping_key=group, service=self._service)
        if prune_marker is None or _claim_prune(prune_marker, time.time()):
            self.prune_runs()

    def prune_runs(self, now_s: float | None = None) -> int:
        """Delete run groups pushed more than ``RUN_RETENTION_S`` ago; how many went."""
        cutoff = (now_s if now_s is not None else time.time()) - RUN_RETENTION_S
        old = [labels for labels, pushed_at in self._run_groups() if pushed_at < cutoff]
        for labels in old:
            delete_from_gateway(self.url, JOB, grouping_key=labels, timeout=self.timeout_s,
                                handler=_handler(self._service))
        return len(old)

    def _run_groups(self) -> Iterator[tuple[dict[str, str], float]]:
        response = self._get("/api/v1/metrics")
        response.raise_for_status()
        for group in response.json().get("data", []):
            labels = dict(group.get("labels", {}))
            if labels.pop("job", None) != JOB or "run" not in labels:
                continue
            pushed = group.get("push_time_seconds", {}).get("metrics", [{}])
            yield labels, float(pushed[0].get("value", 0) if pushed else 0)


    def _get(self, path: str) -> httpx.Response:
        return _send(self._service, self._label, "GET", f"{self.url}{path}", self.timeout_s)


def _claim_prune(marker: Path, now_s: float) -> bool:
    """True when the last prune recorded by ``marker`` is ``PRUNE_EVERY_S`` old (or none);
    the marker then records this one."""
    try:
        if now_s - marker.stat().st_mtime < PRUNE_EVERY_S:
            return False
    except FileNotFoundError:
        marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return True


def _registry(collector: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    return registry


class _RunCollector:
    """What one run did, and only that: summed over runs by the rules."""

    def __init__(self, sample: RunSample) -> None:
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        outcome = GaugeMetricFamily(RUN_OUTCOME, "1 for the run's outcome, 0 for the others.",
                                    labels=["outcome"])
        for value in Outcome:
            outcome.add_metric([value.value], float(value.value == self.sample.outcome))
        yield outcome
        yield from self._stages()
        finished = GaugeMetricFamily(RUN_FINISHED, "When the run finished (Unix time).")
        finished.add_metric([], self.sample.finished_at_s)
        yield finished

    def _stages(self) -> Iterable[Metric]:
        counts: dict[tuple[str, str], float] = {}
        durations: dict[tuple[str, str], float] = {}
        for record in self.sample.stages:
            for outcome in _SEEDED_OUTCOMES.get(record.stage, _STAGE_OUTCOMES):
                counts.setdefault((record.stage, outcome), 0.0)
            key = (record.stage, record.outcome)
            counts[key] = counts.get(key, 0.0) + 1
            durations[key] = durations.get(key, 0.0) + record.duration_s
        stage = GaugeMetricFamily(RUN_STAGE, "Times each stage ended with each outcome in "
                                  "this run (1 or 0).", labels=["stage", "outcome"])
        for labels, value in sorted(counts.items()):
            stage.add_metric(list(labels), value)
        yield stage
        seconds = GaugeMetricFamily(RUN_STAGE_SECONDS, "Seconds the stage took in this run.",
                                    labels=["stage", "outcome"])
        for labels, value in sorted(durations.items()):
            seconds.add_metric(list(labels), value)
        yield seconds


class _LastRunCollector:
    """The service's last run: stage durations and when it finished."""

    def __init__(self, sample: RunSample) -> None:
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        last = GaugeMetricFamily(LAST_STAGE_SECONDS, "Stage durations of the last run.",
                                 labels=["stage", "outcome"])
        for stage in self.sample.stages:
            last.add_metric([stage.stage, stage.outcome], stage.duration_s)
        yield last
        finished = GaugeMetricFamily(LAST_RUN, "When the last run finished, by its outcome.",
                                     labels=["outcome"])
        finished.add_metric([self.sample.outcome], self.sample.finished_at_s)
        yield finished
