"""Which tests failed: from a JUnit XML report when the test command writes one, else from
the runner's own output (unittest's ``FAIL: name (id)`` blocks, pytest's ``FAILED id``
summary lines). Pure: text in, names out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from pydantic import BaseModel

SHOWN_NAMES = 10
_UNITTEST = re.compile(r"^(?P<kind>FAIL|ERROR): (?P<name>\S+) \((?P<where>[^)]+)\)",
                       re.MULTILINE)
_PYTEST = re.compile(r"^(?P<kind>FAILED|ERROR) (?P<name>\S+::\S+)(?: - (?P<message>.*))?$",
                     re.MULTILINE)


class FailedTest(BaseModel):
    name: str  # as the runner names it: tests.test_app.AppTest.test_health, a/b.py::test_x
    kind: str  # failure | error
    message: str = ""


class UnreadableReport(ValueError):
    """The JUnit file is not JUnit XML."""


def failed_tests(output: str, junit_xml: str | None = None) -> list[FailedTest]:
    """The failed tests of one run; JUnit XML wins when there is a readable one."""
    if junit_xml is not None:
        try:
            return from_junit(junit_xml)
        except UnreadableReport:
            pass  # the output still names them
    return from_unittest(output) or from_pytest(output)


def from_junit(xml_text: str) -> list[FailedTest]:
    """``<testcase classname name>`` with a ``<failure>`` or ``<error>`` child, in order."""
    try:
        root = ET.fromstring(xml_text)  # noqa: S314 - the service's own report
    except ET.ParseError as exc:
        raise UnreadableReport(f"JUnit report: not valid XML ({exc})") from exc
    if root.tag not in ("testsuites", "testsuite"):
        raise UnreadableReport(f"JUnit report: root is <{root.tag}>, not <testsuite(s)>")
    failed = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            problem = case.find(kind)
            if problem is not None:
                classname = case.get("classname", "")
                name = case.get("name", "?")
                failed.append(FailedTest(
                    name=f"{classname}.{name}" if classname else name, kind=kind,
                    message=(problem.get("message") or "").strip()[:200]))
                break
    return failed


def from_unittest(output: str) -> list[FailedTest]:
    """unittest's failure blocks: ``FAIL: test_x (tests.test_app.AppTest.test_x)``."""
    seen: dict[str, FailedTest] = {}
    for match in _UNITTEST.finditer(output):
        where = match["where"]
        # Python 3.11 prints the full id in parentheses; older ones print module.Class.
        name = where if where.endswith("." + match["name"]) else f"{where}.{match['name']}"
        kind = "failure" if match["kind"] == "FAIL" else "error"
        seen.setdefault(name, FailedTest(name=name, kind=kind))
    return list(seen.values())


def from_pytest(output: str) -> list[FailedTest]:
    """pytest's short summary: ``FAILED tests/test_a.py::test_b - AssertionError``."""
    seen: dict[str, FailedTest] = {}
    for match in _PYTEST.finditer(output):
        kind = "failure" if match["kind"] == "FAILED" else "error"
        seen.setdefault(match["name"], FailedTest(name=match["name"], kind=kind,
                                                  message=(match["message"] or "")[:200]))
    return list(seen.values())


def describe(names: list[str]) -> str:
    more = len(names) - SHOWN_NAMES
    return ", ".join(names[:SHOWN_NAMES]) + (f" (+{more} more)" if more > 0 else "")
