"""What runbook persists in the state store: one row per kind, who writes it, its shape,
and what may be deleted. Every kind is written only through its owner's
:class:`~runbook.store.Collection`; this table is the place to look before adding one.

Keys are ``/``-joined paths, most general part first (``<service>/<environment>``), so a
prefix read (``items(kind, "agent-api/")``) selects one service.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    """The ``kind`` column."""
    key: str
    """How keys are made."""
    owner: str
    """The module that reads and writes it."""
    deletable: str
    """When a document may be deleted without losing anything the runbook needs."""


KINDS: tuple[Kind, ...] = ()
"""Registered by the owners as they move onto the store (see the modules named)."""


def kind(name: str, key: str, owner: str, deletable: str) -> str:
    """Declare a kind; returns its name for the owner's Collection. Names are unique."""
    global KINDS
    if any(existing.name == name for existing in KINDS):
        raise ValueError(f"state store kind {name!r} declared twice")
    KINDS = (*KINDS, Kind(name, key, owner, deletable))
    return name
