"""``python -m runbook_cli``: the same as the ``runbook`` command."""

from runbook_cli.cli import main

main()
