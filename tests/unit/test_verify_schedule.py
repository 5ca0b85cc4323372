"""The analysis schedule: checks at their own intervals, early stop on a decided check, and
past the window a check that did not end on a success is measured again, boundedly."""

import time
from collections.abc import Iterator, Mapping

import pytest

from runbook.analysis import Observation, Phase, conclude
from runbook.checks.model import MetricCheck, StandardSource
from runbook.checks.standard import Convention, request_queries, request_series, series_query
from runbook.errors import TransientError
from runbook.verify import AnalysisTarget, Schedule, _Run, wait_for_series

RATE = MetricCheck(name="error-rate", query="q", failure_condition="result > 0.05",
                   consecutive_error_limit=2)
TARGET = AnalysisTarget(endpoint="http://x", paths=["/"], variables={
    "service": "s", "environment": "staging", "revision": "r", "color": "blue",
    "namespace": "staging", "endpoint": "http://x"})


class Scripted:
    """Observations in the order given; the last one repeats."""

    def __init__(self, *observations: Observation) -> None:
        self._items: Iterator[Observation] = iter(observations)
        self._last = observations[-1]
        self.seen: list[Mapping[str, str]] = []

    def observe(self, check: MetricCheck, variables: Mapping[str, str],
                since: float) -> Observation:
        self.seen.append(variables)
        self._last = next(self._items, self._last)
        return self._last


def run(provider: Scripted, window_s: float = 0.25) -> _Run:
    schedule = Schedule(window_s=window_s, initial_delay_s=0, default_interval_s=0.1)
    analysis = _Run(TARGET, [RATE], schedule, 2, provider, lambda _: None)  # type: ignore[arg-type]
    analysis.window(lambda: None)
    analysis.extra()
    return analysis


ok, down = Observation(query="q", result=0.0), Observation(query="q", error="down")


def test_a_run_ending_on_errors_is_measured_again_until_it_ends_on_a_success() -> None:
    analysis = run(Scripted(ok, down, ok, down, ok))
    phases = [r.phase for r in analysis.results]
    assert phases[-1] is Phase.SUCCESSFUL and Phase.ERROR in phases
    assert conclude([RATE], analysis.results).phase is Phase.SUCCESSFUL


def test_errors_to_the_end_are_not_a_pass_and_extra_rounds_are_bounded() -> None:
    analysis = run(Scripted(ok, down))
    assert conclude([RATE], analysis.results).phase is Phase.ERROR
    assert len(analysis.results) <= 2 + 3 + 1


def test_a_decided_check_stops_the_window_early() -> None:
    analysis = run(Scripted(Observation(query="q", result=0.3)), window_s=5)
    assert [r.phase for r in analysis.results] == [Phase.FAILED]


def test_templates_get_the_interval_as_a_prometheus_range() -> None:
    provider = Scripted(ok)
    run(provider)
    assert provider.seen[0]["interval"] == "5s" and provider.seen[0]["revision"] == "r"


class SeriesPrometheus:
    """single_value answers in order; the last answer repeats. An Exception is raised."""

    def __init__(self, *answers: float | None | Exception) -> None:
        self.answers = list(answers)
        self.queries: list[str] = []

    def single_value(self, query: str) -> float | None:
        self.queries.append(query)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_window_waits_until_the_revision_is_scraped() -> None:
    prometheus = SeriesPrometheus(None, None, 0, 1.0)
    wait = wait_for_series(prometheus, "q", timeout_s=5, poll_s=0.01)  # type: ignore[arg-type]
    assert wait.seen and len(prometheus.queries) == 4


def test_a_series_that_never_appears_ends_the_wait_at_its_deadline() -> None:
    prometheus = SeriesPrometheus(None)
    wait = wait_for_series(prometheus, "q", timeout_s=0.05, poll_s=0.01)  # type: ignore[arg-type]
    assert not wait.seen and wait.waited_s < 1 and len(prometheus.queries) >= 2


def test_an_unreachable_prometheus_ends_the_wait_at_once() -> None:
    prometheus = SeriesPrometheus(TransientError("prometheus down"))
    wait = wait_for_series(prometheus, "q", timeout_s=30, poll_s=1)  # type: ignore[arg-type]
    assert not wait.seen and wait.error and len(prometheus.queries) == 1 and wait.waited_s < 1


def test_a_stopped_analysis_stops_waiting() -> None:
    prometheus = SeriesPrometheus(None)
    wait = wait_for_series(prometheus, "q", timeout_s=30, poll_s=0.01,  # type: ignore[arg-type]
                           stop_reason=lambda: "superseded")
    assert not wait.seen and len(prometheus.queries) == 1


@pytest.mark.parametrize("source", list(StandardSource))
def test_each_source_has_a_series_query_over_the_request_counter(source: StandardSource
                                                                 ) -> None:
    query = series_query(source, Convention.CLASSIC)
    metric, labels = request_series(source, Convention.CLASSIC)
    assert query == f"count(count_over_time({metric}{{{labels}}}[{{{{interval}}}}]) >= 2)"
    error_rate, _ = request_queries(source, Convention.CLASSIC, 5)
    assert metric in error_rate and labels in error_rate


def test_elapsed_time_counts_from_the_analysis_start_and_the_window_from_the_series() -> None:
    # The series wait took 5 s: measurements are placed after the verify stage's start
    # (elapsed includes the wait), while the window itself still runs its full length.
    schedule = Schedule(window_s=0.25, initial_delay_s=0, default_interval_s=0.1)
    analysis = _Run(TARGET, [RATE], schedule, 2, Scripted(ok), lambda _: None,  # type: ignore[arg-type]
                    started=time.monotonic() - 5)
    analysis.window(lambda: None)
    assert len(analysis.results) >= 2
    assert all(5 < r.elapsed_s < 6 for r in analysis.results)
