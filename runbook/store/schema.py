"""The store's tables and their migrations.

One table of documents keyed by ``(kind, key)``; a small meta table records the schema
version. A migration is a function from version N to N + 1, run once, in one transaction,
by whichever process opens the store first.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

documents = Table(
    "runbook_documents",
    metadata,
    Column("kind", String(64), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("body", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    # Incremented on every write: readers can tell that a document changed under them.
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

meta = Table(
    "runbook_store_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

Migration = Callable[[Connection], None]

# MIGRATIONS[n] takes a version-n schema to version n + 1. Version 1 is `metadata` as
# created fresh; append here, never edit a released step.
MIGRATIONS: dict[int, Migration] = {}
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def stored_version(connection: Connection) -> int | None:
    row = connection.execute(select(meta.c.value).where(meta.c.name == "schema_version"))
    value = row.scalar_one_or_none()
    return int(value) if value is not None else None


def migrate(connection: Connection) -> int:
    """Create or upgrade the schema inside the caller's transaction; the version reached."""
    metadata.create_all(connection, checkfirst=True)
    version = stored_version(connection)
    if version is None:
        connection.execute(meta.insert().values(name="schema_version",
                                                value=str(SCHEMA_VERSION)))
        return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"state store schema {version} is newer than this runbook "
                           f"({SCHEMA_VERSION}): upgrade runbook")
    for step in range(version, SCHEMA_VERSION):
        MIGRATIONS[step](connection)
    if version != SCHEMA_VERSION:
        connection.execute(meta.update().where(meta.c.name == "schema_version")
                           .values(value=str(SCHEMA_VERSION)))
    return SCHEMA_VERSION
