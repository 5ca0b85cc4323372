"""Declared checks: validated at load time (exit 2, one line naming the metric), templates
filled safely, conditions evaluated without eval, the command provider without a shell."""

from pathlib import Path

import pytest

from runbook.analysis import Phase, judge
from runbook.checks import conditions, templates
from runbook.checks.model import MetricCheck
from runbook.checks.providers import _command
from runbook.errors import ConfigurationError
from runbook.service import load_service
from runbook.verify import checks_for, range_for


def write_service(tmp_path: Path, body: str) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "service.yaml").write_text("name: svc\nport: 8080\n" + body)
    return tmp_path


QUEUE = """  metrics:
    - name: queue-depth
      provider: prometheus
      query: max(echo_queue_depth{revision="{{revision}}"})
      failure_condition: %s
      interval_s: 5
      failure_limit: 0
      inconclusive_limit: 0
      consecutive_error_limit: 4
      no_data: inconclusive
"""


def test_the_issue_example_loads(tmp_path: Path) -> None:
    service = load_service(write_service(tmp_path, "analysis:\n" + QUEUE % "result > 50"))
    [check] = service.spec.policy_for("staging").analysis.metrics
    assert (check.name, check.interval_s, check.failure_condition) == (
        "queue-depth", 5, "result > 50")


@pytest.mark.parametrize(("condition", "words"), [
    ("result >", "does not parse"),
    ("results > 50", "unknown name(s) ['results']"),
    ("result.__class__", "may not: ['Attribute']"),
    ("__import__('os')", "unknown name"),
])
def test_a_bad_condition_is_a_service_yaml_error_naming_the_metric(
        tmp_path: Path, condition: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_service(write_service(tmp_path, "analysis:\n" + QUEUE % f'"{condition}"'))
    message = str(error.value)
    assert "\n" not in message
    assert "analysis.metrics.0" in message and "metric 'queue-depth'" in message
    assert words in message


def test_an_unknown_template_variable_is_a_service_yaml_error(tmp_path: Path) -> None:
    body = "analysis:\n" + QUEUE.replace("{{revision}}", "{{release}}") % "result > 50"
    with pytest.raises(ConfigurationError, match=r"unknown template variable\(s\) \['release'\]"):
        load_service(write_service(tmp_path, body))


def test_per_environment_checks_and_provider(tmp_path: Path) -> None:
    body = ("environments:\n  production:\n    analysis:\n      provider: istio\n"
            "      guard_s: 900\n" + "\n".join("    " + line for line in
                                             (QUEUE % "result > 9").splitlines()) + "\n")
    spec = load_service(write_service(tmp_path, body)).spec
    assert spec.policy_for("staging").analysis.metrics == []
    production = spec.policy_for("production").analysis
    assert (production.provider, production.guard_s) == ("istio", 900)
    assert [c.name for c in production.metrics] == ["queue-depth"]


def test_metric_names_must_be_unique(tmp_path: Path) -> None:
    body = "analysis:\n" + QUEUE % "result > 1" + QUEUE.replace("  metrics:\n", "") % "result > 2"
    with pytest.raises(ConfigurationError, match="repeated: \\['queue-depth'\\]"):
        load_service(write_service(tmp_path, body))


def test_a_declared_check_replaces_the_standard_one_of_its_name(tmp_path: Path) -> None:
    body = ("analysis:\n  metrics:\n    - name: error-rate\n      query: my_errors\n"
            "      failure_condition: result > 0.2\n")
    spec = load_service(write_service(tmp_path, body)).spec
    checks = checks_for(spec, spec.policy_for("staging"), "docker")
    assert [c.name for c in checks] == ["health", "avg-latency", "traffic-latency", "error-rate"]
    assert checks[-1].query == "my_errors"


def test_templates_are_quoted_where_they_land() -> None:
    rendered = templates.render('x{revision="{{revision}}"}[{{ interval }}]',
                                {"revision": 'a"b', "interval": "6s"},
                                lambda v: v.replace('"', '\\"'))
    assert rendered == 'x{revision="a\\"b"}[6s]'


def test_the_interval_covers_enough_scrapes() -> None:
    assert range_for(3, 2) == "5s"
    assert range_for(30, 2) == "30s"


def test_conditions_are_not_python_eval() -> None:
    with pytest.raises(conditions.ConditionError):
        conditions.validate("().__class__.__bases__", ("result",))
    assert conditions.evaluate("result > 2 and isnan(result) == false", {"result": 3.0})


def test_command_reads_stdout_as_a_number_and_the_exit_code() -> None:
    number = _command(["python3", "-c", "print(42)"], 5)
    assert (number.result, number.values["exit_code"]) == (42.0, 0)
    failing = _command(["sh", "-c", "exit 3"], 5)
    assert (failing.result, failing.values["exit_code"]) == (3, 3)
    missing = _command(["no-such-program-here"], 5)
    assert missing.error is not None
    check = MetricCheck(name="exit", provider="command", command=["true"],
                        success_condition="exit_code == 0")
    assert judge(check, failing, 1).phase is Phase.FAILED


def test_no_shell_is_involved() -> None:
    observed = _command(["echo", "$(id)", ";", "ls"], 5)
    assert observed.values["stdout"] == "$(id) ; ls"


def test_the_command_line_says_it_in_one_line_and_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    directory = write_service(tmp_path, "analysis:\n" + QUEUE % '"result >"')
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "runbook"), "pipeline", str(directory),
         "--env", "staging"], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 2, completed.stderr
    [line] = completed.stderr.strip().splitlines()
    assert "metric 'queue-depth': failure_condition 'result >' does not parse" in line


def test_without_verification_traffic_there_is_no_traffic_check(tmp_path: Path) -> None:
    body = "analysis:\n  traffic_rps: 0\n"
    spec = load_service(write_service(tmp_path, body)).spec
    names = [c.name for c in checks_for(spec, spec.policy_for("staging"), "docker")]
    assert names == ["health", "error-rate", "avg-latency"]
