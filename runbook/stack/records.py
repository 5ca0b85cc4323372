"""What the stack reports: one ``ComponentStatus`` per component, the ``Probe`` a health check
returns, and the progress callback every step reports through. No I/O here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

Action = Literal["started", "already running", "stopped", "not running", "failed"]
ProgressCallback = Callable[[str], None]


class ComponentStatus(BaseModel):
    """What one component of the stack is doing and what the last command did to it."""

    name: str
    url: str
    healthy: bool
    action: Action
    detail: str = ""


@dataclass(frozen=True)
class Probe:
    healthy: bool
    detail: str


def ignore_progress(message: str) -> None:
    return None
