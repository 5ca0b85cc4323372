"""The store's engine: connections, transactions with row locks, documents."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Connection, Engine, create_engine, delete, event, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from runbook.errors import TransientError
from runbook.store import schema
from runbook.store.layout import StateLayout

Body = dict[str, Any]

# Deadlines: every lock wait and every connect ends (the runbook's rule: no wait forever).
DEFAULT_LOCK_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
# Execution option of a connection whose transaction only reads (see StateStore._read).
_READ_ONLY = "runbook_read_only"
# An arbitrary constant: the advisory lock that serialises schema creation on PostgreSQL.
_SCHEMA_LOCK_ID = 0x52554E42  # "RUNB"


class StoreUnavailable(TransientError):
    """The database did not answer, refused the login, or a lock wait ran past its
    deadline. Transient: the task retry policy may try again."""


def default_state_url(state_dir: Path) -> str:
    """The embedded default: SQLite in the local stack's state directory."""
    return f"sqlite:///{StateLayout(state_dir).database}"


@dataclass
class Document:
    """A document read under a row lock; change ``body`` (or set ``deleted``) and the
    change is written when the ``update`` block ends without an exception."""

    kind: str
    key: str
    body: Body
    exists: bool
    version: int = 0
    deleted: bool = field(default=False)


class Transaction:
    """Reads and writes inside one database transaction (see :meth:`StateStore.transaction`)."""

    def __init__(self, connection: Connection, dialect: str) -> None:
        self._connection = connection
        self._dialect = dialect

    def get(self, kind: str, key: str, *, lock: bool = False) -> Document | None:
        """The document, or None. ``lock``: hold its row lock until the transaction ends."""
        query = select(schema.documents.c.body, schema.documents.c.version).where(
            schema.documents.c.kind == kind, schema.documents.c.key == key)
        if lock and self._dialect == "postgresql":
            query = query.with_for_update()
        row = self._connection.execute(query).one_or_none()
        if row is None:
            return None
        return Document(kind, key, dict(row.body), exists=True, version=row.version)

    def lock(self, kind: str, key: str, default: Body | None = None) -> Document:
        """The document under its row lock; missing: ``default`` (written only if changed)."""
        if default is not None:
            # Create-if-missing first, so two workers racing on a new key lock the same row.
            self._insert_missing(kind, key, default)
        found = self.get(kind, key, lock=True)
        if found is not None:
            return found
        return Document(kind, key, dict(default or {}), exists=False)

    def put(self, kind: str, key: str, body: Body) -> None:
        """Insert or replace."""
        now = datetime.now(UTC)
        values = {"kind": kind, "key": key, "body": body, "version": 1, "updated_at": now}
        statement = self._insert()(schema.documents).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[schema.documents.c.kind, schema.documents.c.key],
            set_={"body": body, "updated_at": now,
                  "version": schema.documents.c.version + 1},
        )
        self._connection.execute(statement)

    def insert(self, kind: str, key: str, body: Body) -> bool:
        """Insert unless the key exists; True when this call created it."""
        return self._insert_missing(kind, key, body)

    def delete(self, kind: str, key: str) -> bool:
        result = self._connection.execute(delete(schema.documents).where(
            schema.documents.c.kind == kind, schema.documents.c.key == key
        ).returning(schema.documents.c.key))
        return result.first() is not None

    def items(self, kind: str, prefix: str = "") -> list[tuple[str, Body]]:
        """Every ``(key, body)`` of a kind whose key starts with ``prefix``, by key."""
        query = select(schema.documents.c.key, schema.documents.c.body).where(
            schema.documents.c.kind == kind)
        if prefix:
            query = query.where(func.substr(schema.documents.c.key, 1, len(prefix)) == prefix)
        rows = self._connection.execute(query.order_by(schema.documents.c.key))
        return [(row.key, dict(row.body)) for row in rows]

    def write(self, document: Document) -> None:
        if document.deleted:
            self.delete(document.kind, document.key)
        else:
            self.put(document.kind, document.key, document.body)

    def _insert_missing(self, kind: str, key: str, body: Body) -> bool:
        statement = self._insert()(schema.documents).values(
            kind=kind, key=key, body=body, version=1, updated_at=datetime.now(UTC)
        ).on_conflict_do_nothing(index_elements=[schema.documents.c.kind,
                                                 schema.documents.c.key])
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT here.
        inserted = self._connection.execute(statement.returning(schema.documents.c.key))
        return inserted.first() is not None

    def _insert(self) -> Any:
        return pg_insert if self._dialect == "postgresql" else sqlite_insert


class StateStore:
    """One database of documents. Thread-safe; one per process and URL (:func:`open_store`).

    Args:
        url: SQLAlchemy URL, ``sqlite:///PATH`` or ``postgresql+psycopg://user@host/db``
            (``postgresql://`` is taken to mean psycopg 3).
        password: the database password, kept out of the URL so it never prints.
        lock_timeout_s: the longest a statement waits for a row or database lock.
    """

    def __init__(self, url: str, password: SecretStr | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> None:
        parsed = _normalised(make_url(url))
        if password is not None:
            parsed = parsed.set(password=password.get_secret_value())
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"state store: unsupported database {self.dialect!r} "
                             "(sqlite or postgresql)")
        self.url = parsed.render_as_string(hide_password=True)
        self.lock_timeout_s = lock_timeout_s
        self._engine = _engine(parsed, lock_timeout_s)
        with self._guard(), self._engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"),
                                   {"id": _SCHEMA_LOCK_ID})
            schema.migrate(connection)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction: everything inside commits together or not at all."""
        with self._guard(), self._engine.begin() as connection:
            yield Transaction(connection, self.dialect)

    @contextmanager
    def _read(self) -> Iterator[Transaction]:
        """A transaction that only reads. On SQLite a deferred one: in WAL mode it neither
        waits for the write lock nor holds it, so reads do not queue behind every other
        process's writes (on PostgreSQL the same as :meth:`transaction`)."""
        with self._guard(), self._engine.connect() as connection:
            connection.execution_options(**{_READ_ONLY: True})
            with connection.begin():
                yield Transaction(connection, self.dialect)

    @contextmanager
    def update(self, kind: str, key: str, default: Body | None = None) -> Iterator[Document]:
        """Read-modify-write of one document under its row lock."""
        with self.transaction() as tx:
            document = tx.lock(kind, key, default)
            yield document
            if document.deleted or document.exists or document.body != (default or {}):
                tx.write(document)

    def get(self, kind: str, key: str) -> Body | None:
        with self._read() as tx:
            found = tx.get(kind, key)
            return found.body if found else None

    def put(self, kind: str, key: str, body: Body) -> None:
        with self.transaction() as tx:
            tx.put(kind, key, body)

    def insert(self, kind: str, key: str, body: Body) -> bool:
        with self.transaction() as tx:
            return tx.insert(kind, key, body)

    def delete(self, kind: str, key: str) -> bool:
        with self.transaction() as tx:
            return tx.delete(kind, key)

    def items(self, kind: str, prefix: str = "") -> list[tuple[str, Body]]:
        with self._read() as tx:
            return tx.items(kind, prefix)

    def append(self, kind: str, body: Body) -> str:
        """Add a record to an append-only kind (run records, timelines); its key sorts by
        time, so ``items(kind)`` reads them in order."""
        key = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self.put(kind, key, body)
        return key

    def dispose(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Database faults leave as :class:`StoreUnavailable`, with the URL's password
        hidden and without the statement's parameters (document bodies)."""
        try:
            yield
        except DBAPIError as exc:
            cause = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise StoreUnavailable(f"state store {self.url}: {cause}") from None
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"state store {self.url}: {type(exc).__name__}") from None


def _normalised(url: URL) -> URL:
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


def _engine(url: URL, lock_timeout_s: float) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, lock_timeout_s)
    lock_ms = int(lock_timeout_s * 1000)
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=lock_timeout_s,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S,
                      "options": f"-c lock_timeout={lock_ms} -c statement_timeout="
                                 f"{lock_ms * 2}"},
    )


def _sqlite_engine(url: URL, lock_timeout_s: float) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
    engine = create_engine(
        url, connect_args={"timeout": lock_timeout_s, "check_same_thread": False},
        **({"poolclass": StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed write survives a power cut, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock at the start: read-modify-write cannot interleave.
        # A read-only transaction (StateStore._read) takes none.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine


_open: dict[tuple[str, float], StateStore] = {}
_open_lock = threading.Lock()


def open_store(url: str, password: SecretStr | None = None,
               lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> StateStore:
    """The process's store for ``url`` (engines and pools are shared, not re-created)."""
    with _open_lock:
        key = (url, lock_timeout_s)
        if key not in _open:
            _open[key] = StateStore(url, password, lock_timeout_s)
        return _open[key]
