"""Engines from the plain URLs users write; SQLite pragmas; SQLAlchemy errors as StorageError."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from monitor.errors import StorageError, StorageRefused, StorageUnavailable

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
BUSY_TIMEOUT_MS = 5000


def async_url(url: str) -> URL:
    """The URL with our async driver: `sqlite:///PATH` -> aiosqlite, `postgresql://` -> asyncpg."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageRefused(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise StorageRefused(
            f"database URL: unsupported database {backend!r} (use sqlite:///PATH or postgresql://...)"
        )
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL or an in-memory database."""
    parsed = async_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine; SQLite gets WAL, synchronous=NORMAL, busy_timeout and foreign keys."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, echo=echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(parsed, echo=echo, pool_pre_ping=True)


def create_sqlite_writer(engine: AsyncEngine) -> Engine:
    """A synchronous engine on the same SQLite file, for the store's writer thread.

    aiosqlite hands every statement to its own thread and back; a poll cycle written by one
    function in one thread hop is an order of magnitude faster. Every transaction on this engine
    is BEGIN IMMEDIATE.
    """
    writer = sa_create_engine(
        engine.url.set(drivername="sqlite"), poolclass=StaticPool, echo=engine.echo
    )
    event.listen(writer, "connect", _sqlite_pragmas)
    event.listen(writer, "begin", _sqlite_begin_immediate)
    return writer


def _sqlite_begin_immediate(conn: Connection) -> None:
    # On the stdlib driver directly: this runs once per poll cycle, and going through
    # SQLAlchemy's statement execution would cost as much as a cycle's position rows.
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL is persistent and lets the CLI read while the daemon writes; NORMAL is durable enough
    # with WAL (a power cut may lose the last commit, never corrupt the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # We issue BEGIN ourselves (below) instead of the driver's implicit deferred one.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the lock up front: a deferred transaction that reads, then writes, fails at
    # once with SQLITE_BUSY if another process wrote meanwhile, instead of waiting busy_timeout.
    write = conn.get_execution_options().get("monitor_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def dialect_insert(conn: Connection) -> Any:
    """The connection's dialect's `insert`, the one with `on_conflict_do_*` (upserts)."""
    return sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert


def describe(exc: SQLAlchemyError) -> str:
    """A one-line description of a database error without the SQL statement or its parameters."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Re-raise SQLAlchemy and driver errors as `StorageUnavailable("<action>: <reason>")`."""
    try:
        yield
    except StorageError:
        raise
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"{action}: {describe(exc)}") from exc
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"{action}: {exc}") from exc
    except OSError as exc:
        raise StorageUnavailable(f"{action}: {exc}") from exc


def backup_sqlite(source: Path, destination: Path) -> None:
    """A consistent copy of a (possibly live) SQLite database, compacted, via `VACUUM INTO`."""
    if destination.exists():
        raise StorageRefused(f"backup: {destination} already exists; choose a new file name")
    if not source.is_file():
        raise StorageRefused(f"backup: no database file at {source}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        # The stdlib driver directly: VACUUM cannot run inside the transaction SQLAlchemy opens.
        with contextlib.closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
            conn.execute("VACUUM INTO ?", (str(destination),))
    except sqlite3.Error as exc:
        # A part-written copy (disk full) must not pass for a backup, nor block the next try.
        destination.unlink(missing_ok=True)
        raise StorageUnavailable(f"backup of {source} to {destination}: {exc}") from exc


def sqlite_maintenance(conn: Connection) -> None:
    """After retention's large deletes: refresh the planner's statistics and shrink the WAL file.

    Runs outside any transaction (on the driver connection directly).
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        raw.execute("PRAGMA optimize")
        # A truncating checkpoint holds the write lock while it waits for readers (a `history`
        # or `status` in another process): waiting up to busy_timeout would make the daemon's
        # next cycle fail with "database is locked". Without a wait it only skips this time.
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"database maintenance: {exc}") from exc
