"""A progress bar on the terminal for a running load test (rich); silent when not a TTY."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from runbook.perf.stats import LoadProgress


class ConsoleProgress:
    """Context manager; call it with each :class:`LoadProgress`."""

    def __init__(self, description: str, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[detail]}"), TimeRemainingColumn(),
            console=self.console, transient=False, disable=not self.console.is_terminal,
        )
        self._task: TaskID = self._progress.add_task(description, total=1.0, detail="")

    def __enter__(self) -> ConsoleProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, progress: LoadProgress) -> None:
        detail = (f"{progress.users} users, {progress.requests} req, "
                  f"{progress.failures} failed, {progress.current_rps:.0f} rps")
        self._progress.update(self._task, completed=progress.fraction, detail=detail)
