"""Incident priorities and how soon each must be acknowledged (runbook: P1 15 min, P2 1 h,
P3 4 h). Its own module so the contacts (runbook.yaml) and the incidents both use it."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, Field


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class ResponseTimes(BaseModel):
    """How soon someone must respond, per priority (runbook: 15 min, 1 h, 4 h)."""

    p1_minutes: float = Field(default=15, gt=0)
    p2_minutes: float = Field(default=60, gt=0)
    p3_minutes: float = Field(default=240, gt=0)
    review_days: float = Field(default=14, gt=0)
    """The quarterly runbook review item: acknowledged (someone owns it) within this."""

    def deadline(self, priority: Priority) -> timedelta:
        minutes = {Priority.P1: self.p1_minutes, Priority.P2: self.p2_minutes,
                   Priority.P3: self.p3_minutes}[priority]
        return timedelta(minutes=minutes)
