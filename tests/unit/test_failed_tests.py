"""The failed tests named: JUnit XML first, unittest / pytest output as the fallback."""

from __future__ import annotations

from runbook import gates, testresults
from runbook.models import SuiteResult

UNITTEST_OUTPUT = """\
test_answer (test_x.AppTest.test_answer) ... FAIL
test_boom (test_x.AppTest.test_boom) ... ERROR
test_ok (test_x.AppTest.test_ok) ... ok

======================================================================
ERROR: test_boom (test_x.AppTest.test_boom)
----------------------------------------------------------------------
RuntimeError: x

======================================================================
FAIL: test_answer (test_x.AppTest.test_answer)
----------------------------------------------------------------------
AssertionError: 1 != 2

----------------------------------------------------------------------
Ran 3 tests in 0.010s

FAILED (failures=1, errors=1)
"""
PYTEST_OUTPUT = """\
=========================== short test summary info ============================
FAILED tests/test_app.py::test_answer - assert 1 == 2
ERROR tests/test_app.py::test_db
========================= 1 failed, 1 error in 0.12s ==========================
"""
JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" tests="2">
<testcase classname="tests.test_app" name="test_ok" time="0.001"/>
<testcase classname="tests.test_app" name="test_answer" time="0.002">
<failure message="assert 1 == 2">tests/test_app.py:4: AssertionError</failure></testcase>
</testsuite></testsuites>"""


def test_unittest_failures_and_errors_are_named() -> None:
    found = testresults.failed_tests(UNITTEST_OUTPUT)
    assert [(t.name, t.kind) for t in found] == [
        ("test_x.AppTest.test_boom", "error"), ("test_x.AppTest.test_answer", "failure")]


def test_pytest_summary_lines_are_named() -> None:
    found = testresults.failed_tests(PYTEST_OUTPUT)
    assert [(t.name, t.kind, t.message) for t in found] == [
        ("tests/test_app.py::test_answer", "failure", "assert 1 == 2"),
        ("tests/test_app.py::test_db", "error", "")]


def test_junit_wins_and_a_broken_junit_falls_back_to_the_output() -> None:
    found = testresults.failed_tests(UNITTEST_OUTPUT, JUNIT)
    assert [(t.name, t.message) for t in found] == [
        ("tests.test_app.test_answer", "assert 1 == 2")]
    assert len(testresults.failed_tests(UNITTEST_OUTPUT, "<html/>")) == 2


def test_suite_gate_names_the_failed_tests_and_keeps_the_tail() -> None:
    result = SuiteResult(exit_code=1, duration_s=2.5, output_tail=UNITTEST_OUTPUT,
                         failed_tests=["test_x.AppTest.test_answer"])
    gate = gates.suite_gate(result)
    assert not gate.passed
    assert gate.detail.startswith("exit code 1 in 2.5 s; 1 failed: test_x.AppTest.test_answer")
    assert gate.detail.endswith("FAILED (failures=1, errors=1)")
    unnamed = SuiteResult(exit_code=2, duration_s=1, output_tail="Segmentation fault")
    assert "not named" in gates.describe_suite(unnamed)
    assert gates.describe_suite(SuiteResult(exit_code=0, duration_s=1, output_tail="")) == \
        "exit code 0 in 1.0 s"
