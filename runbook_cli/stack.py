"""``runbook stack up|down|status``: the local stack of real services."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from runbook.settings import StackSettings
from runbook_cli.common import err, out
from runbook_cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from runbook.stack import ComponentStatus

stack_app = typer.Typer(help="The local stack of real services.", no_args_is_help=True)


@stack_app.command("up")
def stack_up() -> None:
    """Start every component that is not running; idempotent."""
    from runbook import stack

    statuses = stack.up(StackSettings(), on_progress=lambda line: err.print(line))
    _print_stack(statuses)
    _exit_unless_healthy(statuses)


@stack_app.command("down")
def stack_down() -> None:
    """Stop what the stack started; data stays in the state directory."""
    from runbook import stack

    _print_stack(stack.down(StackSettings()))


@stack_app.command("status")
def stack_status() -> None:
    """Every component with its URL and health."""
    from runbook import stack

    statuses = stack.status(StackSettings())
    _print_stack(statuses)
    _exit_unless_healthy(statuses)


def _exit_unless_healthy(statuses: list[ComponentStatus]) -> None:
    if not all(s.healthy for s in statuses):
        raise typer.Exit(ExitCode.FAILED)


def _print_stack(statuses: list[ComponentStatus]) -> None:
    table = Table("component", "healthy", "action", "url", "detail")
    for s in statuses:
        table.add_row(s.name, "yes" if s.healthy else "no", s.action, s.url, s.detail)
    out.print(table)
