"""The ``runbook`` command line: the top layer, above the flows it starts.

One module per command group (``pipeline``, ``render``, ``rollback``, ``status``, ``perf``,
``stack``, ``incident``, ``init``), registered in :mod:`runbook_cli.cli`; exit codes in
:mod:`runbook_cli.exit_codes`; errors rendered once by :mod:`runbook_cli.errors`. Bad input
(missing directory, invalid ``service.yaml``, unknown option value) costs one ``error:``
line on stderr (and its hint) and exit code 2, before anything starts.
"""

from runbook_cli.cli import app, main

__all__ = ["app", "main"]
