"""Why a channel did not take an alert."""

from __future__ import annotations

from runbook.errors import RunbookError


class DeliveryFailed(RunbookError):
    """A channel refused or could not be reached. The alert stays in the outbox either way;
    ``transient`` says whether trying again later can help (429, 5xx, unreachable) or the
    request itself is wrong (400, bad token) and needs a configuration fix."""

    def __init__(self, channel: str, message: str, *, transient: bool) -> None:
        super().__init__(f"{channel}: {message}")
        self.transient = transient
