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
