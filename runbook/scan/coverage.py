"""Coverage: the line rate of a Cobertura ``coverage.xml`` from the test stage."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from runbook.scan.models import Coverage, ScanOutputError


def parse(xml_text: str) -> Coverage:
    """Line coverage in percent from the root ``<coverage line-rate="0.87">``.

    Raises ScanOutputError on malformed XML or a missing / out-of-range line rate."""
    try:
        root = ET.fromstring(xml_text)  # noqa: S314
    except ET.ParseError as exc:
        raise ScanOutputError(f"coverage: not valid XML ({exc})") from exc
    if root.tag != "coverage" or "line-rate" not in root.attrib:
        raise ScanOutputError("coverage: not a Cobertura report (no <coverage line-rate=...>)")
    try:
        rate = float(root.attrib["line-rate"])
    except ValueError as exc:
        raise ScanOutputError(f"coverage: line-rate {root.attrib['line-rate']!r}") from exc
    if not 0 <= rate <= 1:
        raise ScanOutputError(f"coverage: line-rate {rate} outside 0..1")
    lines = f"{root.attrib.get('lines-covered', '?')}/{root.attrib.get('lines-valid', '?')}"
    return Coverage(line_rate_pct=round(rate * 100, 2), detail=f"{lines} lines covered")


NOT_MEASURED = "not measured"
NOT_CONFIGURED = Coverage(detail=f"no test command declared in service.yaml: {NOT_MEASURED}")


def from_test_stage(declared_path: str | None, xml_text: str | None) -> Coverage:
    """What the coverage gate judges: the parsed report, or why nothing was measured (tests
    without ``test.coverage_path``, or a declared report the tests did not write). Not
    measured is never a number: the gate blocks or warns by environment."""
    if declared_path is None:
        return Coverage(detail="tests declared without test.coverage_path (Cobertura XML): "
                               + NOT_MEASURED)
    if xml_text is None:
        return Coverage(detail=f"declared {declared_path} but the test command wrote none: "
                               + NOT_MEASURED)
    return parse(xml_text)
