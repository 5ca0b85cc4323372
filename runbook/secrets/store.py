"""The secret store: values and rotation state per service and environment, one document
each in the state store (kind ``secret``, key ``<service>/<environment>``), written in one
transaction (a crash leaves the old record or the new one, never half of one).

Values are kept in clear there, as the files before them were: the default SQLite database
is created readable by its owner only (``runbook.store.open``); a PostgreSQL store is
protected by its own access control.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from runbook.ops.rotation import RotationState, Step, accepted_values
from runbook.store import Collection, StateStore, as_store
from runbook.store.layout import SECRET


class StoredSecret(BaseModel):
    current: SecretStr | None = None
    pending: SecretStr | None = None
    """The new value while a rotation is in progress."""
    state: RotationState = Field(default_factory=RotationState)

    def accepted(self) -> list[str]:
        """Values the consumers must accept now (new first during the overlap)."""
        return accepted_values(_reveal(self.current), _reveal(self.pending), self.state.step)

    @property
    def rotating(self) -> bool:
        return self.state.step is not Step.IDLE


class _StoredValue(BaseModel):
    """What the store keeps of one secret: values revealed (a ``SecretStr`` would be
    written as asterisks)."""

    current: str | None = None
    pending: str | None = None
    state: RotationState = Field(default_factory=RotationState)


class SecretRecord(BaseModel):
    """One service/environment's secrets, by declared name."""

    secrets: dict[str, _StoredValue] = Field(default_factory=dict)


class SecretStore:
    """Reads and writes one service/environment's secrets (kind ``secret``)."""

    def __init__(self, state: StateStore | Path, service: str, environment: str) -> None:
        self.records = Collection(as_store(state), SECRET, SecretRecord)
        self.key = f"{service}/{environment}"

    def load(self) -> dict[str, StoredSecret]:
        record = self.records.get(self.key)
        if record is None:
            return {}
        return {name: StoredSecret(current=_secret(entry.current),
                                   pending=_secret(entry.pending), state=entry.state)
                for name, entry in record.secrets.items()}

    def delete(self) -> None:
        """Forget this service/environment's secrets (values and rotation state)."""
        self.records.delete(self.key)

    def save(self, secrets: dict[str, StoredSecret]) -> None:
        self.records.put(self.key, SecretRecord(secrets={
            name: _StoredValue(current=_reveal(s.current), pending=_reveal(s.pending),
                               state=s.state)
            for name, s in secrets.items()}))


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value is not None else None


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
