"""The ``runbook`` typer app: every command group registered in one place, and ``main``,
which turns what a command raises into one rendered error and an exit code
(:mod:`runbook_cli.exit_codes`)."""

from __future__ import annotations

import sys

import typer

from runbook.errors import ConfigurationError, RunbookError
from runbook_cli import incident, init, perf, pipeline, render, rollback, stack, status
from runbook_cli.errors import error_lines, lines_of, print_error
from runbook_cli.exit_codes import ExitCode, exit_code_table

EPILOG = "Exit codes (README.md#exit-codes):\n\n" + exit_code_table().replace("\n", "\n\n")

app = typer.Typer(
    name="runbook", help="A CI/CD runbook made executable as Prefect flows.", epilog=EPILOG,
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
app.command("pipeline")(pipeline.pipeline)
app.command("render")(render.render)
app.command("rollback")(rollback.rollback)
app.command("status")(status.status)
app.command("perf")(perf.perf)
app.add_typer(stack.stack_app, name="stack")
app.add_typer(incident.incident_app, name="incident")
app.add_typer(init.init_app, name="init")


def main() -> None:
    """The console entry point: runs the app, exits with the code of what happened."""
    try:
        # Without standalone mode, click returns a command's typer.Exit code instead of
        # exiting; errors come here as exceptions so each is rendered once.
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:
        # Usage errors (unknown option value, missing argument): one line.
        format_message = getattr(exc, "format_message", None)
        message = format_message() if format_message else str(exc)
        _fail(error_lines(message.replace("Value error, ", "")), ExitCode.BAD_INPUT)
    except ConfigurationError as exc:
        _fail(lines_of(exc), ExitCode.BAD_INPUT)
    except RunbookError as exc:
        _fail(lines_of(exc), ExitCode.FAILED)
    sys.exit(result if isinstance(result, int) else ExitCode.OK)


def _fail(lines: list[str], code: ExitCode) -> None:
    print_error(lines)
    sys.exit(code)
