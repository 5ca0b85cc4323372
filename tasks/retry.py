"""The one retry policy: transient faults retry with exponential backoff and jitter;
anything else (a failed gate, bad input, a refused push) fails at once."""

from __future__ import annotations

from typing import Any

from prefect.states import State
from prefect.tasks import exponential_backoff

from runbook.errors import TransientError


def retry_on_transient(task: Any, task_run: Any, state: State[Any]) -> bool:
    exc = state.data
    if not isinstance(exc, BaseException):
        exc = state.result(raise_on_failure=False)
    return isinstance(exc, TransientError)


TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient,
}
