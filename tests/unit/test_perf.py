"""The perf stage's pure parts: Locust stats parsing, the baseline decision, gates, resources,
the generated locustfile, the commands, the chart and the markdown."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import pytest

from runbook.errors import ConfigurationError
from runbook.gates import describe_failures, failed, perf_gates
from runbook.models import PerfReport, ResourceUsage
from runbook.perf.chart import latency_chart
from runbook.perf.degradation import judge_degradation
from runbook.perf.docker_stats import cpu_cores, memory_bytes, summarize_docker_stats
from runbook.perf.locustfile import render_locustfile, resolve_locustfile
from runbook.perf.markdown import perf_markdown
from runbook.perf.runner import LocustJob, master_command, resolve_workers, worker_command
from runbook.perf.stats import (
    PluginTimes,
    percentile_ms,
    read_plugin_times,
    read_progress,
    report_from_locust_json,
)
from runbook.policy import Thresholds


def locust_entry(name: str, times_ms: dict[int, int], failures: int = 0) -> dict:
    """One endpoint as Locust's --json-file writes it (keys as seen from locust 2.47)."""
    count = sum(times_ms.values())
    return {
        "name": name, "method": "GET", "start_time": 1000.0, "last_request_timestamp": 1004.0,
        "num_requests": count, "num_none_requests": 0, "num_failures": failures,
        "total_response_time": float(sum(t * n for t, n in times_ms.items())),
        "max_response_time": float(max(times_ms)), "min_response_time": float(min(times_ms)),
        "total_content_length": 0, "response_times": {str(t): n for t, n in times_ms.items()},
        "num_reqs_per_sec": {}, "num_fail_per_sec": {},
    }


def report(avg: float, p95: float, requests: int = 100, failures: int = 0) -> PerfReport:
    return PerfReport(requests=requests, failures=failures, duration_s=10, avg_latency_s=avg,
                      p95_latency_s=p95, max_latency_s=p95)


def test_percentile_follows_locusts_histogram_rule() -> None:
    histogram = Counter({10: 90, 20: 5, 500: 5})
    assert percentile_ms(histogram, 100, 0.50) == 10
    assert percentile_ms(histogram, 100, 0.90) == 20
    assert percentile_ms(histogram, 100, 0.95) == 500  # Locust: 5 of 100 at 500 ms
    assert percentile_ms(histogram, 100, 0.99) == 500
    assert percentile_ms(Counter(), 0, 0.95) is None


def test_report_has_totals_and_endpoints_from_locust_json() -> None:
    entries = [locust_entry("/", {10: 80, 30: 20}),
               locust_entry("/api/answer", {2000: 90, 3000: 10}, failures=5)]
    perf = report_from_locust_json(entries, 5.0, users=2, tool="locust")
    assert perf.requests == 200 and perf.failures == 5
    assert perf.error_rate == pytest.approx(0.025)
    assert perf.duration_s == pytest.approx(4.0) and perf.rps == pytest.approx(50.0)
    assert [e.name for e in perf.endpoints] == ["GET /", "GET /api/answer"]
    root, answer = perf.endpoints
    assert root.avg_latency_s == pytest.approx(0.014)
    assert root.p95_latency_s == pytest.approx(0.030)
    assert answer.p50_latency_s == pytest.approx(2.0)
    assert answer.p99_latency_s == pytest.approx(3.0) and answer.max_latency_s == 3.0
    assert perf.p90_latency_s == pytest.approx(2.0)
    assert perf.max_latency_s == pytest.approx(3.0)


def test_report_without_any_request_has_no_latency() -> None:
    perf = report_from_locust_json([], 5.0)
    assert perf.requests == 0 and perf.avg_latency_s is None and perf.error_rate is None
    assert not any(g.passed for g in perf_gates(perf, Thresholds()))


def test_progress_reads_the_last_aggregated_history_row(tmp_path: Path) -> None:
    history = tmp_path / "h.csv"
    history.write_text(
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,Total Request Count,"
        "Total Failure Count\n"
        "1,1,,Aggregated,0.0,0.0,N/A,0,0\n"
        "2,4,,Aggregated,120.5,1.0,3,250,2\n")
    progress = read_progress(history, 5.0, 10.0)
    assert (progress.users, progress.requests, progress.failures) == (4, 250, 2)
    assert progress.current_rps == 120.5 and progress.fraction == 0.5
    assert read_progress(tmp_path / "missing.csv", 1.0, 10.0).requests == 0


@pytest.mark.parametrize(("factor", "critical"), [(1.6, True), (1.3, False), (1.5, False)])
def test_p95_degradation_against_baseline(factor: float, critical: bool) -> None:
    baseline = report(avg=0.2, p95=0.4)
    current = report(avg=0.2, p95=0.4 * factor)
    decision = judge_degradation(current, baseline, "rev1", Thresholds())
    assert decision.critical is critical
    p95 = next(c for c in decision.comparisons if c.metric == "p95_latency_s")
    assert p95.ratio == pytest.approx(factor)


def test_average_degradation_is_critical_too() -> None:
    decision = judge_degradation(report(avg=0.32, p95=0.4), report(avg=0.2, p95=0.4), "rev1",
                                 Thresholds())
    assert decision.critical
    assert "avg_latency_s" in decision.reasons[0] and "1.60x" in decision.reasons[0]


def test_tiny_absolute_increase_is_noise_not_degradation() -> None:
    decision = judge_degradation(report(avg=0.004, p95=0.008), report(avg=0.002, p95=0.004),
                                 "rev1", Thresholds())
    assert not decision.critical
    stricter = Thresholds(perf_degradation_floor_s=0)
    assert judge_degradation(report(avg=0.004, p95=0.008), report(avg=0.002, p95=0.004),
                             "rev1", stricter).critical


def test_no_baseline_is_nothing_to_compare() -> None:
    decision = judge_degradation(report(0.2, 0.4), None, None, Thresholds())
    assert not decision.critical and decision.comparisons == []
    gates = perf_gates(report(0.2, 0.4), Thresholds(), degradation=decision)
    assert gates[-1].name == "perf_baseline" and gates[-1].passed


def test_baseline_gates_carry_ratio_and_threshold() -> None:
    decision = judge_degradation(report(0.2, 0.64), report(0.2, 0.4), "rev1", Thresholds())
    gates = {g.name: g for g in perf_gates(report(0.2, 0.64), Thresholds(),
                                           degradation=decision)}
    assert not gates["perf_baseline_p95_ratio"].passed
    assert gates["perf_baseline_p95_ratio"].value == pytest.approx(1.6)
    assert gates["perf_baseline_p95_ratio"].threshold == 1.5
    assert gates["perf_baseline_avg_ratio"].passed


def test_rps_gate_only_when_required() -> None:
    assert "perf_rps" not in {g.name for g in perf_gates(report(0.1, 0.1), Thresholds())}
    slow = perf_gates(report(0.1, 0.1, requests=100), Thresholds(), required_rps=20)
    assert [(g.name, g.value, g.threshold) for g in failed(slow)] == [("perf_rps", 10.0, 20)]
    assert not failed(perf_gates(report(0.1, 0.1, requests=300), Thresholds(), required_rps=20))


def test_resource_gates_and_unmeasured_resources_fail() -> None:
    busy = report(0.1, 0.1).model_copy(update={"resources": ResourceUsage(
        cpu_avg_pct=75.0, cpu_max_pct=90.0, memory_max_pct=50.0, samples=4, source="t")})
    assert [g.name for g in failed(perf_gates(busy, Thresholds()))] == ["perf_cpu_pct"]
    unmeasured = report(0.1, 0.1).model_copy(update={"resources": ResourceUsage(source="t")})
    names = [g.name for g in failed(perf_gates(unmeasured, Thresholds()))]
    assert names == ["perf_cpu_pct", "perf_memory_pct"]


def test_slow_release_message_names_the_measured_average() -> None:
    gates = perf_gates(report(avg=2.5123, p95=2.6), Thresholds())
    assert "perf_avg_latency_s=2.5123 (threshold 2.0)" in describe_failures(gates)


def docker_sample(cpu_total: int, pre_total: int, system: int, pre_system: int,
                  usage: int, inactive: int, limit: int) -> dict:
    """Shape of GET /containers/{id}/stats?stream=false (cgroup v2)."""
    return {
        "cpu_stats": {"cpu_usage": {"total_usage": cpu_total}, "system_cpu_usage": system,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": pre_total},
                         "system_cpu_usage": pre_system},
        "memory_stats": {"usage": usage, "limit": limit, "stats": {"inactive_file": inactive}},
    }


def test_docker_stats_as_share_of_the_limits() -> None:
    # 0.25 core busy of a 0.5-core limit = 50 %; 100 MiB of 256 MiB (cache excluded).
    sample = docker_sample(250, 0, 2000, 0, 110 * 2**20, 10 * 2**20, 256 * 2**20)
    assert cpu_cores(sample) == pytest.approx(0.25)
    assert memory_bytes(sample) == 100 * 2**20
    usage = summarize_docker_stats([sample], {"HostConfig": {"NanoCpus": 500_000_000}})
    assert usage.cpu_avg_pct == 50.0 and usage.memory_max_pct == pytest.approx(39.06, abs=0.01)
    no_limit = summarize_docker_stats([sample], {"HostConfig": {}})
    assert no_limit.cpu_avg_pct == 12.5  # share of the host's 2 CPUs
    assert summarize_docker_stats([], {}).cpu_avg_pct is None


def test_generated_locustfile_requests_the_traffic_paths(tmp_path: Path) -> None:
    source = render_locustfile(["/", "/api/answer?q=status"], 3)
    ast.parse(source)
    assert '["/", "/api/answer?q=status"]' in source and "TIMEOUT_S = 3.0" in source
    assert resolve_locustfile(tmp_path, None, ["/"], 3, tmp_path).read_text() == \
        render_locustfile(["/"], 3)
    (tmp_path / "load.py").write_text("# the service's own\n")
    assert resolve_locustfile(tmp_path, "load.py", ["/"], 3, tmp_path) == tmp_path / "load.py"
    with pytest.raises(ConfigurationError, match="missing.py"):
        resolve_locustfile(tmp_path, "missing.py", ["/"], 3, tmp_path)


def test_distributed_mode_runs_a_master_and_workers(tmp_path: Path) -> None:
    job = LocustJob(host="http://127.0.0.1:1", locustfile=tmp_path / "f.py", users=8,
                    spawn_rate=4, duration_s=5, workdir=tmp_path, workers=2)
    master = master_command(job, 5557)
    assert "--headless" in master and "--master" in master
    assert master[master.index("--expect-workers") + 1] == "2"
    assert master[master.index("--host") + 1] == "http://127.0.0.1:1"
    worker = worker_command(job, 5557)
    assert "--worker" in worker and worker[worker.index("--master-port") + 1] == "5557"
    single = master_command(job.model_copy(update={"workers": 0}))
    assert "--master" not in single and single[single.index("--run-time") + 1] == "5s"


def test_chart_and_markdown_show_release_against_baseline(tmp_path: Path) -> None:
    current = report_from_locust_json([locust_entry("/", {30: 95, 60: 5})], 5, users=2,
                                      tool="locust")
    baseline = report_from_locust_json([locust_entry("/", {10: 95, 20: 5})], 5)
    chart = latency_chart(current, baseline, tmp_path / "c.png", "agent-api staging")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    decision = judge_degradation(current, baseline, "rev1", Thresholds())
    text = perf_markdown("perf", current, decision, perf_gates(current, Thresholds(),
                                                                 degradation=decision), chart)
    assert "| GET / | 100 | 0 |" in text
    assert "| p95_latency_s | 60 | 20 | 3.00x | no |" in text  # 40 ms: under the noise floor
    assert "data:image/png;base64," in text


def test_microsecond_histogram_gives_sub_millisecond_percentiles() -> None:
    entries = [locust_entry("/", {0: 90, 1: 10})]
    fine = {"GET /": Counter({400: 60, 600: 35, 1200: 5})}
    perf = report_from_locust_json(entries, 5.0, latency_us=fine)
    assert perf.p50_latency_s == pytest.approx(0.0004)
    assert perf.p90_latency_s == pytest.approx(0.0006)
    assert perf.p99_latency_s == pytest.approx(0.0012)
    assert perf.endpoints[0].p50_latency_s == pytest.approx(0.0004)
    # The average and the maximum come from the same times as the percentiles.
    assert perf.avg_latency_s == pytest.approx((400 * 60 + 600 * 35 + 1200 * 5) / 100 / 1e6)
    assert perf.max_latency_s == pytest.approx(0.0012)
    coarse = report_from_locust_json(entries, 5.0)  # no plugin output: Locust's whole ms
    assert coarse.p50_latency_s == 0.0 and coarse.p99_latency_s == pytest.approx(0.001)


@pytest.mark.parametrize(("timed", "says"), [
    (100, "Latencies: all requests timed at the connection."),
    (40, "Latencies: 40% of requests timed at the connection, the rest Locust's own times."),
    (0, "Latencies: Locust's own times (this client is not timed at the connection)."),
    (None, None),  # a report stored before the plugin timed at the connection
])
def test_the_perf_markdown_says_what_its_latencies_measure(timed: int | None,
                                                          says: str | None) -> None:
    report = report_from_locust_json([locust_entry("/", {1: 100})], 5.0,
                                     timed_at_connection=timed)
    text = perf_markdown("perf", report, judge_degradation(report, None, "r", Thresholds()),
                         [])
    notes = [line for line in text.splitlines() if line.startswith("Latencies:")]
    assert len(notes) == (0 if says is None else 1)
    if says is not None:
        assert notes[0].startswith(says)


def test_plugin_times_are_read_with_their_count_at_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "latency_us.json"
    assert read_plugin_times(path) == PluginTimes()  # none written
    path.write_text(json.dumps({"latency_us": {"GET /": {"410": 3}, "GET /b": {"1200": 1}},
                                "at_connection": {"GET /": 3, "GET /b": 1}}))
    times = read_plugin_times(path)
    assert times.latency_us == {"GET /": Counter({410: 3}), "GET /b": Counter({1200: 1})}
    assert times.at_connection == 4


def test_total_falls_back_to_locusts_histogram_when_an_endpoint_lacks_fine_times() -> None:
    entries = [locust_entry("/", {2: 10}), locust_entry("/b", {4: 10})]
    perf = report_from_locust_json(entries, 5.0, latency_us={"GET /": Counter({2100: 10})})
    assert perf.endpoints[0].p50_latency_s == pytest.approx(0.0021)
    assert perf.endpoints[1].p50_latency_s == pytest.approx(0.004)
    assert perf.p99_latency_s == pytest.approx(0.004)


@pytest.mark.parametrize(("workers", "users", "think", "rps", "own", "expected"), [
    (3, 4, 0.05, None, False, 3),         # an explicit number is kept
    ("auto", 4, 0.05, None, False, 0),    # 80 rps at most: one process
    ("auto", 4, 0.0, None, False, 2),     # closed loop: one worker per core
    ("auto", 1, 0.0, None, False, 0),     # one user cannot use two workers
    ("auto", 50, 0.01, None, False, 2),   # 5000 rps ceiling
    ("auto", 4, 0.0, 500.0, False, 0),    # the throughput gate asks for little
    ("auto", 8, 0.0, 5000.0, True, 2),    # own locustfile, demanding gate
    ("auto", 8, 0.0, None, True, 0),      # own locustfile, unknown demand
])
def test_workers_auto_follows_the_requested_load(
    workers: int | str, users: int, think: float, rps: float | None, own: bool, expected: int,
) -> None:
    assert resolve_workers(workers, users, think, rps, own, cores=2) == expected  # type: ignore[arg-type]
    assert resolve_workers("auto", 8, 0.0, None, False, cores=1) == 0
