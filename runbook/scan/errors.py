"""The scan package's error, apart from its models so every scan module can raise it."""

from __future__ import annotations

from runbook.errors import RunbookError


class ScanOutputError(RunbookError):
    """A scanner's report could not be read (malformed, wrong shape). Names the scanner."""
