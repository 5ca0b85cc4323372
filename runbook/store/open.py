"""The one way runbook code opens its state store.

``store_for(settings)`` is what the ``runbook.yaml`` in force says
(``settings.configuration.state``: a PostgreSQL URL, the password from the variable
``password_env`` names), else SQLite in the stack's state directory (the embedded default);
``store_for(settings, state)`` takes an explicit ``state`` section. Stores are shared
per process and URL (:func:`runbook.store.open_store`).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from runbook.config import StateConfig
from runbook.errors import ConfigurationError
from runbook.settings import StackSettings
from runbook.store.engine import StateStore, default_state_url, open_store
from runbook.store.layout import StateLayout


def store_for(settings: StackSettings, state_config: StateConfig | None = None
              ) -> StateStore:
    """The state store in force for these settings.

    Raises:
        ConfigurationError: ``password_env`` names a variable that is not set.
    """
    # Unset: the runbook.yaml in force (settings.configuration), so every store of a run
    # follows its state.url without each caller passing it.
    state_config = state_config or settings.configuration.state
    if state_config.url is None:
        return _sqlite_in(settings.state_dir)
    password = None
    if state_config.password_env:
        value = os.environ.get(state_config.password_env)
        if value is None:
            raise ConfigurationError(f"state.password_env: ${state_config.password_env} "
                                     "is not set")
        password = SecretStr(value)
    return open_store(state_config.url, password)


def as_store(state: StateStore | Path) -> StateStore:
    """A store given as itself, or as a state directory (its default SQLite database):
    the owners' constructors take either, so a caller with only a directory (a test, a
    tool) needs nothing else."""
    return state if isinstance(state, StateStore) else _sqlite_in(state)


def _sqlite_in(state_dir: Path) -> StateStore:
    database = StateLayout(state_dir).database
    if not database.exists():
        # It holds rotated secret values: readable by its owner only, as the secret files
        # were. SQLite gives its -wal and -shm files the database file's mode.
        state_dir.mkdir(parents=True, exist_ok=True)
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    return open_store(default_state_url(state_dir))
