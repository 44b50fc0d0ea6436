"""The database handle: the engine, the one-writer-at-a-time write path and read connections.

Every other storage module writes through `Database.write` and reads through `Database.reading`;
none of them holds a connection of its own. On SQLite a write runs in the handle's single writer
thread on a synchronous connection (one thread hop per transaction instead of one per statement);
on PostgreSQL it runs on the async connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Protocol, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.errors import StorageRefused
from monitor.storage.engine import (
    BUSY_TIMEOUT_MS,
    create_sqlite_writer,
    sqlite_maintenance,
    storage_errors,
)
from monitor.storage.writer_thread import WriterThread

log = logging.getLogger(__name__)
T = TypeVar("T")


class Readable(Protocol):
    """Anything that hands out read connections (the handle, or the store in front of it)."""

    def reading(self, action: str) -> AbstractAsyncContextManager[AsyncConnection]:
        """A read-only connection, errors as StorageError."""
        ...


class Database:
    """One database as this process uses it: reads on the async engine, writes one at a time."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._writer: Engine | None = None
        self._writer_thread: WriterThread | None = None
        self._writer_conn: Connection | None = None
        self._closed = False
        if self.is_sqlite:
            self._writer = create_sqlite_writer(engine)
            self._writer_thread = WriterThread("sqlite-writer")
        # One writer at a time: SQLite has one anyway, and it keeps cache updates ordered.
        self._write_lock = asyncio.Lock()
        # PostgreSQL shared by several daemons: this daemon's name. A poll cycle is stored only
        # while it holds the account's lease, and outbox rows are claimed in its name.
        self.lease_holder: str | None = None
        # How long after a daemon's heartbeat expired its outbox claims may be taken over.
        self.claim_grace = timedelta(0)

    async def close(self) -> None:
        """Release the database connections (again: no effect); later writes fail."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and self._writer_thread is not None:
            writer = self._writer

            def dispose() -> None:
                self._close_writer_connection()
                writer.dispose()

            await self._writer_thread.run(dispose)
            self._writer_thread.shutdown()
        await self.engine.dispose()

    def _writer_connection(self) -> Connection:
        # Kept open in the writer thread: checking a connection out and back in for every
        # cycle costs as much as writing the cycle.
        if self._writer_conn is None:
            assert self._writer is not None
            self._writer_conn = self._writer.connect()
        return self._writer_conn

    def _close_writer_connection(self) -> None:
        if self._writer_conn is not None:
            conn, self._writer_conn = self._writer_conn, None
            conn.close()

    async def write(
        self,
        action: str,
        work: Callable[[Connection], T],
        on_commit: Callable[[], None] | None = None,
    ) -> T:
        """Run `work` in one write transaction; `on_commit` runs only once it has committed."""

        def in_transaction(conn: Connection) -> T:
            with conn.begin():
                result = work(conn)
            if on_commit is not None:
                on_commit()
            return result

        if self._closed:
            raise StorageRefused(f"{action}: the store is closed")
        async with self._write_lock:
            with storage_errors(action):
                if self._writer is not None and self._writer_thread is not None:

                    def in_writer_thread() -> T:
                        conn = self._writer_connection()
                        try:
                            return in_transaction(conn)
                        except BaseException:
                            # Start the next write on a fresh connection, whatever broke.
                            self._close_writer_connection()
                            raise

                    # Cancelling the caller cannot stop the thread halfway: the transaction
                    # then commits or rolls back as a whole.
                    return await self._writer_thread.run(in_writer_thread)
                try:
                    async with self.engine.connect() as async_conn:
                        return await async_conn.run_sync(in_transaction)
                except IntegrityError:
                    # Another daemon sharing this PostgreSQL committed the same shared row
                    # (an account, a symbol) a moment earlier: the whole transaction rolled
                    # back, and once more finds that row. A race, not a storage outage.
                    log.info("%s: a concurrent write of a shared row; trying once more", action)
                async with self.engine.connect() as async_conn:
                    return await async_conn.run_sync(in_transaction)

    @asynccontextmanager
    async def reading(self, action: str) -> AsyncIterator[AsyncConnection]:
        """A read-only connection, errors as StorageError."""
        with storage_errors(action):
            async with self.engine.connect() as conn:
                yield conn

    async def check_writable(self) -> None:
        """Commit a write that changes nothing (the schema version row rewritten): raises
        StorageError while the database refuses writes (disk full, locked, read-only)."""
        await self.write(
            "checking that the database takes writes",
            lambda conn: conn.execute(text("UPDATE alembic_version SET version_num = version_num")),
        )

    async def free_space(self) -> None:
        """On SQLite, give back what the write-ahead log holds (a truncating checkpoint), so a
        full disk has room again once the cause is gone; nothing to do on PostgreSQL."""
        if self._writer_thread is None:
            return

        def checkpoint() -> None:
            raw = self._writer_connection().connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA busy_timeout=0")
            try:
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

        async with self._write_lock:
            with storage_errors("freeing disk space (WAL checkpoint)"):
                try:
                    await self._writer_thread.run(checkpoint)
                except BaseException:
                    await self._writer_thread.run(self._close_writer_connection)
                    raise

    async def maintain(self) -> None:
        """On SQLite, after large deletes: `sqlite_maintenance` on the writer's connection."""
        if self._writer_thread is None:
            return
        async with self._write_lock:
            await self._writer_thread.run(lambda: sqlite_maintenance(self._writer_connection()))
