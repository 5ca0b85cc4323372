"""The secret store: values and rotation state per service and environment, one file each.

``<state>/secrets/<service>/<environment>.json``, mode 0600 in a 0700 directory, written
atomically (a crash leaves the old file or the new one, never half of one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from runbook.ops.rotation import RotationState, Step, accepted_values


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


class SecretStore:
    """Reads and writes one service/environment's secrets."""

    def __init__(self, state_dir: Path, service: str, environment: str) -> None:
        self.path = state_dir / "secrets" / service / f"{environment}.json"

    def load(self) -> dict[str, StoredSecret]:
        if not self.path.is_file():
            return {}
        raw = json.loads(self.path.read_text())
        return {name: StoredSecret.model_validate(entry) for name, entry in raw.items()}

    def save(self, secrets: dict[str, StoredSecret]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        payload = {name: {"current": _reveal(s.current), "pending": _reveal(s.pending),
                          "state": s.state.model_dump(mode="json")}
                   for name, s in secrets.items()}
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
        temporary.replace(self.path)


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
