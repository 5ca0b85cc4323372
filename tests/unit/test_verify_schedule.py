"""The analysis schedule: checks at their own intervals, early stop on a decided check, and
past the window a check that did not end on a success is measured again, boundedly."""

from collections.abc import Iterator, Mapping

from runbook.analysis import Observation, Phase, conclude
from runbook.checks.model import MetricCheck
from runbook.verify import AnalysisTarget, Schedule, _Run

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
