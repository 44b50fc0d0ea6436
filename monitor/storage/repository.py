"""The write side of the store: one transaction per poll cycle, the outbox, alert state, silences.

A cycle collects its writes in memory and runs them as one function in one transaction when the
`async with store.cycle()` block ends; an exception or cancellation inside the block writes nothing.
On SQLite that function runs in the store's single writer thread on a synchronous connection (one
thread hop per cycle instead of one per statement); on PostgreSQL it runs on the async connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.domain.errors import InvalidInput
from monitor.domain.model import MarginMode, Position, Side, Snapshot, Tier
from monitor.domain.notification import Notification
from monitor.domain.stops import position_stops
from monitor.errors import LeaseLost, StorageRefused, StorageUnavailable
from monitor.ports import AlertEventRecord, HeldDelivery, OutboxEntry, SinkHealth
from monitor.storage import retention
from monitor.storage.engine import (
    BUSY_TIMEOUT_MS,
    create_engine,
    create_sqlite_writer,
    dialect_insert,
    sqlite_maintenance,
    storage_errors,
)
from monitor.storage.models import (
    HOUR,
    MARGIN_MODE_CODES,
    MINUTE,
    SIDE_CODES,
    Account,
    AccountLease,
    AccountRollup,
    AccountSnapshot,
    AlertEvent,
    AlertState,
    MonitorDaemon,
    Outbox,
    PositionLeg,
    PositionSnapshot,
    Silence,
    SinkState,
    Symbol,
    TierTable,
)
from monitor.storage.retention import RetentionPolicy
from monitor.storage.serialize import notification_from_payload, notification_to_payload
from monitor.storage.sqltypes import to_millis
from monitor.storage.writer_thread import WriterThread

log = logging.getLogger(__name__)
T = TypeVar("T")

# A cached position leg is trusted this long without being used; retention never deletes a leg
# used more recently than its shortest period (at least an hour), so a cached id stays valid.
LEG_CACHE_SECONDS = 600.0
# After this long rolling up hours back to back, a pause longer than SQLite's busy handler
# sleeps between its retries (another writer gets the lock within about a second).
PRUNE_PAUSE_AFTER_SECONDS = 0.5
PRUNE_PAUSE_SECONDS = 0.15

_LegKey = tuple[int, str, Side, MarginMode, float, float, float | None]
# A snapshot's positions as far as stored ids and tier tables go: venue, then per position its
# symbol, side, margin mode, quantity, entry price, leverage and tier table.
_PositionTerms = tuple[str, tuple[tuple[Any, ...], ...]]


@dataclass(frozen=True, slots=True)
class _KnownPositions:
    """An account's last stored position terms and their leg ids, to skip per-position lookups.

    Valid while `tiers_version` is the store's: no tier table was loaded or changed since, so
    every position's tier table is still the one recorded for its symbol.
    """

    terms: _PositionTerms
    leg_ids: tuple[int, ...]
    tiers_version: int
    used: float


@dataclass(frozen=True, slots=True)
class SilenceInfo:
    """An active or past silence of an account's notifications."""

    id: int
    account: str
    until: datetime
    created_at: datetime
    reason: str


@dataclass(slots=True)
class _Ids:
    """Ids known to exist in the database (published only after a commit)."""

    accounts: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, int] = field(default_factory=dict)
    legs: dict[_LegKey, tuple[int, float]] = field(default_factory=dict)
    tiers: dict[tuple[str, str], tuple[Tier, ...]] = field(default_factory=dict)
    positions: dict[int, _KnownPositions] = field(default_factory=dict)
    # (pool currency, margin model) as stored on each account row
    pools: dict[str, tuple[str, str]] = field(default_factory=dict)
    tiers_version: int = 0

    def forget_legs(self) -> None:
        """Retention may have deleted legs: look every leg up again."""
        self.legs.clear()
        self.positions.clear()


class SqlStore:
    """Snapshot store on SQLite or PostgreSQL; implements `SnapshotStore` and `OutboxStore`."""

    def __init__(self, engine: AsyncEngine, *, retention_policy: RetentionPolicy | None = None):
        self.engine = engine
        self.retention_policy = retention_policy or RetentionPolicy()
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
        self._ids = _Ids()
        # PostgreSQL shared by several daemons: this daemon's name. A poll cycle is stored only
        # while it holds the account's lease, and outbox rows are claimed in its name.
        self.lease_holder: str | None = None
        # How long after a daemon's heartbeat expired its outbox claims may be taken over.
        self.claim_grace = timedelta(0)

    @classmethod
    def open(cls, url: str, *, retention_policy: RetentionPolicy | None = None) -> SqlStore:
        """A store on the database at a plain URL (`sqlite:///PATH`, `postgresql://...`)."""
        return cls(create_engine(url), retention_policy=retention_policy)

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

    @asynccontextmanager
    async def cycle(self) -> AsyncIterator[Cycle]:
        """One poll cycle's writes in one transaction; nothing is written on error or cancellation."""
        writer = Cycle(self)
        yield writer
        await self.write("storing the poll cycle", writer.flush, writer.publish)

    # -- accounts -------------------------------------------------------------------------

    async def register_account(
        self, name: str, *, venue: str, asset: str, poll_interval: float | None, now: datetime
    ) -> None:
        """Create or update a configured account (its poll interval lets `status` judge staleness)."""

        def work(conn: Connection) -> int:
            account_id = _account_id(conn, name, venue, asset, now)
            conn.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(venue=venue, asset=asset, poll_interval=poll_interval)
            )
            return account_id

        account_id = await self.write(f"registering account {name!r}", work)
        self._ids.accounts[name] = account_id

    async def _known_account(self, conn: AsyncConnection, name: str) -> int | None:
        if name in self._ids.accounts:
            return self._ids.accounts[name]
        found: int | None = await conn.scalar(select(Account.id).where(Account.name == name))
        return found

    async def last_snapshot_at(self, account: str) -> datetime | None:
        """When the account's newest stored snapshot was taken (None if it has none)."""
        async with self.reading(f"reading the last snapshot of {account!r}") as conn:
            account_id = await self._known_account(conn, account)
            if account_id is None:
                return None
            result: datetime | None = await conn.scalar(
                select(AccountSnapshot.taken_at)
                .where(AccountSnapshot.account_id == account_id)
                .order_by(AccountSnapshot.taken_at.desc())
                .limit(1)
            )
            return result

    # -- alert state ----------------------------------------------------------------------

    async def load_alert_states(self, account: str) -> dict[str, dict[str, Any]]:
        """The persisted alert state per rule key ({} for a new account)."""
        async with self.reading(f"loading alert state of {account!r}") as conn:
            account_id = await self._known_account(conn, account)
            if account_id is None:
                return {}
            rows = await conn.execute(
                select(AlertState.rule_key, AlertState.state).where(
                    AlertState.account_id == account_id
                )
            )
            return {rule_key: dict(state) for rule_key, state in rows}

    # -- outbox ---------------------------------------------------------------------------

    async def enqueue(self, notifications: Sequence[Notification], sinks: Sequence[str]) -> None:
        """Queue every notification for every sink in its own transaction."""
        rows = _outbox_rows(notifications, sinks)
        if rows:
            await self.write("queueing notifications", lambda conn: _enqueue(conn, rows))

    def _claimable(self) -> ColumnElement[bool]:
        """Outbox rows this daemon may deliver: with several daemons on PostgreSQL, those not
        claimed by another live daemon; otherwise every row."""
        holder = self.lease_holder
        if holder is None or self.is_sqlite:
            return true()
        live = select(MonitorDaemon.name).where(
            MonitorDaemon.expires_at > func.now() - literal(self.claim_grace)
        )
        return or_(
            Outbox.claimed_by.is_(None),
            Outbox.claimed_by == holder,
            Outbox.claimed_by.not_in(live),
        )

    async def enqueue_held(self, deliveries: Sequence[HeldDelivery], now: datetime) -> None:
        """Store what was handled in memory, in one transaction: delivered rows as delivered,
        the others due at `now` (a notification id already queued for the sink is kept)."""
        rows = []
        for held in deliveries:
            (row,) = _outbox_rows([held.notification], [held.sink])
            row.update(
                attempts=held.attempts,
                delivered_at=held.delivered_at,
                last_error=held.last_error,
                next_attempt_at=now if held.delivered_at is None else held.delivered_at,
            )
            rows.append(row)
        if rows:
            await self.write("storing alerts handled in memory", lambda conn: _enqueue(conn, rows))

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

    async def due(self, now: datetime, limit: int) -> Sequence[OutboxEntry]:
        """Undelivered, not dead entries whose next attempt is at or before `now`, oldest first.

        With several daemons on PostgreSQL the rows are claimed for this daemon: locked `FOR
        UPDATE SKIP LOCKED` (a row another daemon is claiming at this moment is skipped, not
        waited for) and marked `claimed_by`; another daemon leaves them alone until this one's
        heartbeat expires, so each is delivered by one daemon."""
        columns = (Outbox.id, Outbox.sink, Outbox.payload, Outbox.attempts, Outbox.created_at)

        def pending(*selected: Any) -> Any:
            return (
                select(*selected)
                .where(
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.next_attempt_at <= now,
                    self._claimable(),
                )
                .order_by(Outbox.created_at, Outbox.id)
                .limit(limit)
            )

        if self.lease_holder is not None and not self.is_sqlite:
            oldest = pending(Outbox.id).with_for_update(skip_locked=True).scalar_subquery()
            claim = (
                update(Outbox)
                .where(Outbox.id.in_(oldest))
                .values(claimed_by=self.lease_holder)
                .returning(*columns)
            )
            with storage_errors("claiming outbox rows"):
                async with self.engine.begin() as conn:
                    claimed = list(await conn.execute(claim))
            # RETURNING keeps no order: oldest first again, as delivery order depends on it.
            rows = sorted(claimed, key=lambda row: (row[4], row[0]))
        else:
            async with self.reading("reading the outbox") as conn:
                rows = list(await conn.execute(pending(*columns)))
        return [
            OutboxEntry(
                id=row_id,
                sink=sink,
                notification=notification_from_payload(payload),
                attempts=attempts,
            )
            for row_id, sink, payload, attempts, _created in rows
        ]

    async def retry_times(self, now: datetime) -> dict[str, datetime]:
        """For each sink with entries waiting for a retry (due after `now`), the earliest one."""
        async with self.reading("reading the outbox retry times") as conn:
            rows = await conn.execute(
                select(Outbox.sink, func.min(Outbox.next_attempt_at))
                .where(
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.next_attempt_at > now,
                    self._claimable(),
                )
                .group_by(Outbox.sink)
            )
            return {str(sink): when for sink, when in rows}

    async def retry_now(self, sink: str, now: datetime) -> None:
        """The sink is back: its entries waiting for a retry are due at `now`."""
        await self.write(
            "rescheduling notifications",
            lambda conn: conn.execute(
                update(Outbox)
                .where(
                    Outbox.sink == sink,
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.next_attempt_at > now,
                    self._claimable(),
                )
                .values(next_attempt_at=now)
            ),
        )

    async def _update_outbox(self, action: str, entry_id: int, **values: Any) -> None:
        await self.write(
            action,
            lambda conn: conn.execute(update(Outbox).where(Outbox.id == entry_id).values(**values)),
        )

    async def still_claimed(self, entry_id: int) -> bool:
        """Just before sending: whether the row is still this daemon's claim. A daemon whose
        heartbeat lapsed (its machine stalled past the claim grace) may have lost its rows to
        another one; it then must not send them as well. Always true with one daemon."""
        holder = self.lease_holder
        if holder is None or self.is_sqlite:
            return True
        async with self.reading("checking an outbox claim") as conn:
            found = await conn.scalar(
                select(Outbox.id).where(
                    Outbox.id == entry_id,
                    Outbox.claimed_by == holder,
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                )
            )
            return found is not None

    async def mark_delivered(self, entry_id: int, at: datetime) -> None:
        """The sink accepted the entry; it is never sent again."""
        await self._update_outbox(
            "marking an outbox entry delivered", entry_id, delivered_at=at, last_error=None
        )

    async def mark_failed(self, entry_id: int, next_attempt_at: datetime, error: str) -> None:
        """A retryable failure: count the attempt and try again at `next_attempt_at`."""
        await self._update_outbox(
            "recording a failed delivery",
            entry_id,
            attempts=Outbox.attempts + 1,
            next_attempt_at=next_attempt_at,
            last_error=error,
        )

    async def postpone(
        self, entry_ids: Sequence[int], next_attempt_at: datetime, note: str
    ) -> None:
        """Entries not tried because their sink is failing: due again at `next_attempt_at`,
        without counting an attempt."""
        if not entry_ids:
            return
        ids = list(entry_ids)
        await self.write(
            "postponing notifications",
            lambda conn: conn.execute(
                update(Outbox)
                .where(Outbox.id.in_(ids))
                .values(next_attempt_at=next_attempt_at, last_error=note)
            ),
        )

    async def mark_dead(self, entry_id: int, error: str, *, attempted: bool = True) -> None:
        """Give up on the entry; it stays stored for inspection. `attempted=False`: it was
        not even tried (its sink is disabled or gone), so no attempt is counted."""
        await self._update_outbox(
            "recording an undeliverable notification",
            entry_id,
            dead=True,
            attempts=Outbox.attempts + (1 if attempted else 0),
            last_error=error,
        )

    async def depth(self) -> int:
        """How many entries are still waiting (undelivered and not dead)."""
        async with self.reading("reading the outbox depth") as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(Outbox)
                .where(Outbox.delivered_at.is_(None), Outbox.dead.is_(False))
            )
            return int(count or 0)

    async def held_before(self, sink: str, cutoff: datetime) -> Sequence[OutboxEntry]:
        """The sink's waiting entries created before `cutoff`, oldest first."""
        async with self.reading("reading held notifications") as conn:
            rows = await conn.execute(
                select(Outbox.id, Outbox.sink, Outbox.payload, Outbox.attempts)
                .where(
                    Outbox.sink == sink,
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.created_at < cutoff,
                    self._claimable(),
                )
                .order_by(Outbox.created_at, Outbox.id)
            )
            return [
                OutboxEntry(row_id, name, notification_from_payload(payload), attempts)
                for row_id, name, payload, attempts in rows
            ]

    async def bury(self, entry_ids: Sequence[int], reason: str) -> None:
        """Mark entries dead with `reason` without counting an attempt (a last resort)."""
        ids = list(entry_ids)
        if not ids:
            return
        await self.write(
            "recording undeliverable notifications",
            lambda conn: conn.execute(
                update(Outbox).where(Outbox.id.in_(ids)).values(dead=True, last_error=reason)
            ),
        )

    async def held_counts(self) -> dict[str, int]:
        """Waiting (undelivered, not dead) entries per sink."""
        async with self.reading("reading the outbox per sink") as conn:
            rows = await conn.execute(
                select(Outbox.sink, func.count())
                .where(Outbox.delivered_at.is_(None), Outbox.dead.is_(False))
                .group_by(Outbox.sink)
            )
            return {str(sink): int(count) for sink, count in rows}

    async def sink_states(self) -> dict[str, SinkHealth]:
        """Every stored sink state by sink name."""
        async with self.reading("reading the sink states") as conn:
            rows = await conn.execute(select(SinkState))
            return {
                row.sink: SinkHealth(
                    row.sink,
                    row.state,
                    row.since,
                    row.last_error,
                    row.next_attempt_at,
                    row.retry_requested_at,
                )
                for row in rows
            }

    async def save_sink_state(self, health: SinkHealth, now: datetime) -> None:
        """Store how a sink is doing (a pending retry request is kept)."""
        values = {
            "state": health.state,
            "since": health.since,
            "last_error": health.last_error,
            "next_attempt_at": health.next_attempt_at,
            "updated_at": now,
        }
        await self.write(
            f"recording the state of sink {health.sink!r}",
            lambda conn: conn.execute(
                dialect_insert(conn)(SinkState)
                .values(sink=health.sink, **values)
                .on_conflict_do_update(index_elements=[SinkState.sink], set_=values)
            ),
        )

    async def clear_retry_request(self, sink: str, requested_at: datetime) -> None:
        """The daemon acted on the retry request made at `requested_at` (a newer one stays)."""
        await self.write(
            f"clearing the retry request of sink {sink!r}",
            lambda conn: conn.execute(
                update(SinkState)
                .where(SinkState.sink == sink, SinkState.retry_requested_at == requested_at)
                .values(retry_requested_at=None)
            ),
        )

    async def forget_sinks(self, keep: Sequence[str]) -> None:
        """Drop the stored state of every sink not in `keep` (removed from the configuration)."""
        names = list(keep)
        await self.write(
            "forgetting removed sinks",
            lambda conn: conn.execute(delete(SinkState).where(SinkState.sink.not_in(names))),
        )

    async def request_retry(self, sink: str, now: datetime, revive_since: datetime) -> int:
        """`alerts --retry SINK`: ask the daemon to try the sink at once (it ends the sink's
        back-off and sends its held entries at its next look, within about a second; a stopped
        daemon does it when it starts). Dead entries created at or after `revive_since` are
        revived and sent too, in order; older dead ones stay dead. Returns how many were revived.
        """

        def work(conn: Connection) -> int:
            revived = conn.execute(
                update(Outbox)
                .where(
                    Outbox.sink == sink,
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(True),
                    Outbox.created_at >= revive_since,
                )
                .values(dead=False, next_attempt_at=now, last_error="revived by alerts --retry")
            ).rowcount
            conn.execute(
                dialect_insert(conn)(SinkState)
                .values(sink=sink, state="ok", updated_at=now, retry_requested_at=now)
                .on_conflict_do_update(
                    index_elements=[SinkState.sink], set_={"retry_requested_at": now}
                )
            )
            return int(revived or 0)

        return await self.write(f"requesting a retry of sink {sink!r}", work)

    # -- silences -------------------------------------------------------------------------

    async def add_silence(
        self, account: str, *, until: datetime, reason: str, now: datetime
    ) -> SilenceInfo:
        """Silence an account's notifications until `until`."""

        def work(conn: Connection) -> int:
            account_id = conn.scalar(select(Account.id).where(Account.name == account))
            if account_id is None:
                raise InvalidInput("account", f"unknown account {account!r}")
            silence_id: int | None = conn.scalar(
                insert(Silence)
                .values(account_id=account_id, until=until, created_at=now, reason=reason)
                .returning(Silence.id)
            )
            assert silence_id is not None
            return silence_id

        created = await self.write(f"silencing {account!r}", work)
        return SilenceInfo(created, account, until, now, reason)

    async def remove_silence(self, silence_id: int) -> bool:
        """Delete a silence; False if there was none with that id."""

        def work(conn: Connection) -> bool:
            return bool(conn.execute(delete(Silence).where(Silence.id == silence_id)).rowcount)

        return await self.write("removing a silence", work)

    async def silenced_until(self, account: str, now: datetime) -> datetime | None:
        """When the account's last active silence ends (None: notifications are not silenced)."""
        async with self.reading(f"reading silences of {account!r}") as conn:
            until: datetime | None = await conn.scalar(
                select(func.max(Silence.until))
                .join(Account, Account.id == Silence.account_id)
                .where(Account.name == account, Silence.until > now)
            )
            return until

    async def active_silences(self, now: datetime, account: str | None = None) -> list[SilenceInfo]:
        """Silences still in force at `now`, for one account or all."""
        async with self.reading("reading silences") as conn:
            query = (
                select(Silence.id, Account.name, Silence.until, Silence.created_at, Silence.reason)
                .join(Account, Account.id == Silence.account_id)
                .where(Silence.until > now)
                .order_by(Silence.until)
            )
            if account is not None:
                query = query.where(Account.name == account)
            rows = await conn.execute(query)
            return [SilenceInfo(*row) for row in rows]

    # -- retention ------------------------------------------------------------------------

    async def prune(self, now: datetime) -> retention.PruneReport:
        """Downsample raw snapshots past their period and delete what is past the longest one.

        Raw snapshots are rolled up one hour per transaction (see `retention.roll_up_batch`).
        """
        policy = self.retention_policy
        cutoff = retention.raw_cutoff(policy, now)
        snapshots = positions = 0
        busy_since = time.monotonic()
        while True:
            # Deleted legs may still be cached by a long-idle position: forget them all.
            done = await self.write(
                "pruning old snapshots",
                lambda conn: retention.roll_up_batch(conn, cutoff),
                self._ids.forget_legs,
            )
            if done is None:
                break
            snapshots, positions = snapshots + done[0], positions + done[1]
            if self.is_sqlite and time.monotonic() - busy_since > PRUNE_PAUSE_AFTER_SECONDS:
                # Another process waiting for the lock (the daemon, when this prune runs from
                # the command line) polls for it about every 100 ms: let it have its turn.
                await asyncio.sleep(PRUNE_PAUSE_SECONDS)
                busy_since = time.monotonic()
        if snapshots:
            async with self.reading("finding unused position legs") as conn:
                legs, newest = await conn.run_sync(retention.unused_legs)
            if legs:
                await self.write(
                    "deleting unused position legs",
                    lambda conn: retention.delete_legs(conn, legs, newest),
                    self._ids.forget_legs,
                )
        minutes, hours = await self.write(
            "deleting expired history", lambda conn: retention.expire(conn, policy, now)
        )
        if self._writer_thread is not None:
            async with self._write_lock:
                await self._writer_thread.run(lambda: sqlite_maintenance(self._writer_connection()))
        return retention.PruneReport(cutoff, snapshots, positions, minutes, hours)


class Cycle:
    """Writes of one poll cycle, collected in order and stored by `SqlStore.cycle` in one go."""

    def __init__(self, store: SqlStore):
        self._store = store
        self._steps: list[Callable[[Connection], None]] = []
        self._new = _Ids()
        self._snapshot_time: datetime | None = None
        self._leased: str | None = None

    def flush(self, conn: Connection) -> None:
        """Run the collected writes (inside the store's transaction)."""
        self._new = _Ids()
        holder = self._store.lease_holder
        if holder is not None and self._leased is not None and self._steps:
            self._hold_lease(conn, self._leased, holder)
        for step in self._steps:
            step(conn)

    def _hold_lease(self, conn: Connection, account: str, holder: str) -> None:
        """Store nothing for an account another daemon polls now (this one lost its lease
        while paused); the lease row stays locked until commit, so it cannot move meanwhile."""
        account_id = self._existing_account(conn, account)
        current = conn.scalar(
            select(AccountLease.holder)
            .where(AccountLease.account_id == account_id)
            .with_for_update(read=True)
        )
        if current != holder:
            raise LeaseLost(
                f"account {account!r} is leased to {current or 'no daemon'} now, not to "
                f"{holder}; this daemon stops polling it"
            )

    def publish(self) -> None:
        """After commit: remember the ids this cycle created or confirmed."""
        known = self._store._ids
        known.accounts.update(self._new.accounts)
        known.symbols.update(self._new.symbols)
        known.legs.update(self._new.legs)
        known.tiers.update(self._new.tiers)
        known.positions.update(self._new.positions)
        known.pools.update(self._new.pools)
        if self._new.tiers:
            known.tiers_version += 1

    async def add_snapshot(self, snapshot: Snapshot) -> None:
        """Store the account snapshot with all its positions (and a changed tier table)."""
        if snapshot.taken_at.tzinfo is None:
            raise StorageRefused(f"snapshot of {snapshot.account!r}: taken_at has no timezone")
        if len(snapshot.state.positions) != len(snapshot.risk.positions):
            raise StorageRefused(
                f"snapshot of {snapshot.account!r}: {len(snapshot.state.positions)} positions "
                f"but {len(snapshot.risk.positions)} computed results"
            )
        self._snapshot_time = snapshot.taken_at
        self._leased = snapshot.account
        self._steps.append(lambda conn: self._write_snapshot(conn, snapshot))

    async def save_alert_states(
        self, account: str, states: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Upsert the alert state machine's JSON state per rule key."""
        self._leased = account
        if not states:
            return
        # Copied now: the caller may keep mutating its state objects after this call.
        frozen = json.loads(json.dumps({key: dict(state) for key, state in states.items()}))
        updated_at = self._snapshot_time or datetime.now(UTC)
        self._steps.append(lambda conn: self._write_states(conn, account, frozen, updated_at))

    async def delete_alert_states(self, account: str, rule_keys: Sequence[str]) -> None:
        """Forget the state of rules that no longer exist (removed from the configuration)."""
        if not rule_keys:
            return
        keys = list(rule_keys)

        def step(conn: Connection) -> None:
            account_id = self._existing_account(conn, account)
            conn.execute(
                delete(AlertState).where(
                    AlertState.account_id == account_id, AlertState.rule_key.in_(keys)
                )
            )

        self._steps.append(step)

    async def add_alert_events(self, account: str, events: Sequence[AlertEventRecord]) -> None:
        """Record what the alert rules did in this cycle."""
        if not events:
            return
        rows = [
            {
                "rule_key": event.rule_key,
                "severity": str(event.severity),
                "kind": str(event.kind),
                "at": event.at,
                "title": event.title,
                "text": event.text,
                "facts": _jsonable(event.facts),
            }
            for event in events
        ]

        def step(conn: Connection) -> None:
            account_id = self._existing_account(conn, account)
            conn.execute(insert(AlertEvent), [{**row, "account_id": account_id} for row in rows])

        self._steps.append(step)

    async def enqueue(self, notifications: Sequence[Notification], sinks: Sequence[str]) -> None:
        """Queue every notification for every sink (a replayed notification id is ignored)."""
        rows = _outbox_rows(notifications, sinks)
        if rows:
            self._steps.append(lambda conn: _enqueue(conn, rows))

    # -- the writes, run by flush() ---------------------------------------------------------

    def _existing_account(self, conn: Connection, name: str) -> int:
        known = self._new.accounts.get(name) or self._store._ids.accounts.get(name)
        if known is not None:
            return known
        found = conn.scalar(select(Account.id).where(Account.name == name))
        if found is None:
            raise StorageRefused(
                f"account {name!r} has no stored snapshot or registration yet; "
                "add its snapshot first or register the account"
            )
        self._new.accounts[name] = found
        return found

    def _account(self, conn: Connection, name: str, venue: str, asset: str, now: datetime) -> int:
        known = self._new.accounts.get(name) or self._store._ids.accounts.get(name)
        if known is None:
            known = _account_id(conn, name, venue, asset, now)
            self._new.accounts[name] = known
        return known

    def _symbol(self, conn: Connection, name: str) -> int:
        known = self._new.symbols.get(name) or self._store._ids.symbols.get(name)
        if known is not None:
            return known
        symbol_id = conn.scalar(select(Symbol.id).where(Symbol.name == name))
        if symbol_id is None:
            # Daemons sharing one PostgreSQL meet a new symbol in the same moment: the one that
            # loses the race waits for the winner's row and reads it (no unique violation).
            conn.execute(
                dialect_insert(conn)(Symbol)
                .values(name=name)
                .on_conflict_do_nothing(index_elements=[Symbol.name])
            )
            symbol_id = conn.scalar(select(Symbol.id).where(Symbol.name == name))
        assert symbol_id is not None
        self._new.symbols[name] = symbol_id
        return symbol_id

    def _leg(self, conn: Connection, key: _LegKey, taken_at: datetime, now: float) -> int:
        """The leg id of a position's terms: cached (used within LEG_CACHE_SECONDS) or stored."""
        cached = self._new.legs.get(key) or self._store._ids.legs.get(key)
        if cached is not None and now - cached[1] < LEG_CACHE_SECONDS:
            self._new.legs[key] = (cached[0], now)
            return cached[0]
        account_id, symbol, side_name, mode_name, quantity, entry_price, leverage = key
        symbol_id = self._symbol(conn, symbol)
        side, margin_mode = SIDE_CODES[side_name.value], MARGIN_MODE_CODES[mode_name.value]
        leg_id = conn.scalar(
            select(PositionLeg.id)
            .where(
                PositionLeg.account_id == account_id,
                PositionLeg.symbol_id == symbol_id,
                PositionLeg.side == side,
                PositionLeg.margin_mode == margin_mode,
                PositionLeg.quantity == quantity,
                PositionLeg.entry_price == entry_price,
                PositionLeg.leverage.is_(None)
                if leverage is None
                else PositionLeg.leverage == leverage,
            )
            .order_by(PositionLeg.id.desc())
            .limit(1)
        )
        if leg_id is None:
            leg_id = conn.scalar(
                insert(PositionLeg)
                .values(
                    account_id=account_id,
                    symbol_id=symbol_id,
                    side=side,
                    margin_mode=margin_mode,
                    quantity=quantity,
                    entry_price=entry_price,
                    leverage=leverage,
                    first_seen=taken_at,
                )
                .returning(PositionLeg.id)
            )
        assert leg_id is not None
        self._new.legs[key] = (leg_id, now)
        return leg_id

    def _record_tiers(
        self,
        conn: Connection,
        venue: str,
        symbol: str,
        tiers: tuple[Tier, ...],
        taken_at: datetime,
    ) -> None:
        if not tiers:
            return
        key = (venue, symbol)
        known = self._new.tiers.get(key) or self._store._ids.tiers.get(key)
        if known == tiers:
            return
        symbol_id = self._symbol(conn, symbol)
        if known is None:
            latest = conn.scalar(
                select(TierTable.tiers)
                .where(TierTable.venue == venue, TierTable.symbol_id == symbol_id)
                .order_by(TierTable.first_seen.desc(), TierTable.id.desc())
                .limit(1)
            )
            known = None if latest is None else tuple(Tier(**tier) for tier in latest)
        if known != tiers:
            conn.execute(
                insert(TierTable).values(
                    venue=venue,
                    symbol_id=symbol_id,
                    tiers=[asdict(tier) for tier in tiers],
                    first_seen=taken_at,
                )
            )
        self._new.tiers[key] = tiers

    def _write_snapshot(self, conn: Connection, snapshot: Snapshot) -> None:
        state, risk = snapshot.state, snapshot.risk
        venue = state.venue.value
        account_id = self._account(conn, snapshot.account, venue, state.asset, snapshot.taken_at)
        pool = (state.asset, state.model.value)
        if (
            self._new.pools.get(snapshot.account) or self._store._ids.pools.get(snapshot.account)
        ) != pool:
            # A pooled account's figures are in USD, whatever coin its configuration names.
            conn.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(asset=state.asset, model=state.model.value)
            )
            self._new.pools[snapshot.account] = pool
        distances = [
            p.distance_to_liquidation
            for p in risk.positions
            if p.distance_to_liquidation is not None
        ]
        nearest = min(distances) if distances else None
        statements = _statements(conn)
        taken_ms = to_millis(snapshot.taken_at)
        reported = state.reported
        # In SNAPSHOT_ROW order.
        snapshot_id = statements.snapshot.scalar_row(
            conn,
            (
                account_id,
                taken_ms,
                risk.equity,
                state.wallet_balance,
                risk.maintenance_margin,
                reported.initial_margin,
                risk.margin_ratio,
                risk.exchange_margin_ratio,
                risk.account_liquidation_move,
                nearest,
                reported.equity,
                reported.maintenance_margin,
                reported.margin_ratio,
                None if risk.volatility is None else risk.volatility.move_hourly,
                None if risk.volatility is None else risk.volatility.move_daily,
            ),
        )
        leg_ids = self._leg_ids(conn, account_id, venue, snapshot)
        if leg_ids:
            # In POSITION_ROW order.
            statements.positions.execute_rows(
                conn,
                [
                    (
                        snapshot_id,
                        ordinal,
                        leg_id,
                        position.mark_price,
                        computed.unrealized_pnl,
                        computed.maintenance_margin,
                        computed.liquidation_price,
                        position.exchange_liquidation_price,
                        stop.stop_price,
                        stop.status.value,
                    )
                    for ordinal, (leg_id, position, computed, stop) in enumerate(
                        zip(
                            leg_ids,
                            state.positions,
                            risk.positions,
                            position_stops(risk),
                            strict=True,
                        )
                    )
                ],
            )
        _add_to_rollups(conn, statements.rollup, account_id, snapshot, taken_ms, nearest)

    def _leg_ids(
        self, conn: Connection, account_id: int, venue: str, snapshot: Snapshot
    ) -> tuple[int, ...]:
        """The leg id of every position, recording changed tier tables on the way.

        Positions rarely change between polls: when the account's position terms and tier
        tables are the ones of its last stored snapshot, its leg ids are reused as a whole.
        """
        positions = snapshot.state.positions
        terms: _PositionTerms = (
            venue,
            tuple(
                (
                    p.symbol,
                    p.side,
                    p.margin_mode,
                    p.quantity,
                    p.entry_price,
                    p.leverage,
                    p.tiers,
                )
                for p in positions
            ),
        )
        now = time.monotonic()
        known = self._store._ids
        last = self._new.positions.get(account_id) or known.positions.get(account_id)
        if (
            last is not None
            and now - last.used < LEG_CACHE_SECONDS
            and last.tiers_version == known.tiers_version
            and not self._new.tiers
            and last.terms == terms
        ):
            leg_ids = last.leg_ids
        else:
            leg_ids = tuple(
                self._position_leg(conn, account_id, venue, position, snapshot.taken_at, now)
                for position in positions
            )
        self._new.positions[account_id] = _KnownPositions(terms, leg_ids, known.tiers_version, now)
        return leg_ids

    def _position_leg(
        self,
        conn: Connection,
        account_id: int,
        venue: str,
        position: Position,
        taken_at: datetime,
        now: float,
    ) -> int:
        self._record_tiers(conn, venue, position.symbol, position.tiers, taken_at)
        key = (
            account_id,
            position.symbol,
            position.side,
            position.margin_mode,
            position.quantity,
            position.entry_price,
            position.leverage,
        )
        return self._leg(conn, key, taken_at, now)

    def _write_states(
        self,
        conn: Connection,
        account: str,
        states: dict[str, dict[str, Any]],
        updated_at: datetime,
    ) -> None:
        account_id = self._existing_account(conn, account)
        statement = dialect_insert(conn)(AlertState)
        statement = statement.on_conflict_do_update(
            index_elements=[AlertState.account_id, AlertState.rule_key],
            set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        )
        conn.execute(
            statement,
            [
                {
                    "account_id": account_id,
                    "rule_key": rule_key,
                    "state": state,
                    "updated_at": updated_at,
                }
                for rule_key, state in states.items()
            ],
        )


def _add_to_rollups(
    conn: Connection,
    upsert: _Compiled,
    account_id: int,
    snapshot: Snapshot,
    taken_ms: int,
    nearest: float | None,
) -> None:
    """Fold the snapshot into its minute and hour rows, so bucketed history reads few rows."""
    risk, wallet_balance = snapshot.risk, snapshot.state.wallet_balance
    margin_ratio, exchange_margin_ratio = risk.margin_ratio, risk.exchange_margin_ratio
    # In ROLLUP_ROW order.
    upsert.execute_rows(
        conn,
        [
            (
                account_id,
                resolution,
                taken_ms // (resolution * 1000) * (resolution * 1000),
                1,
                taken_ms,
                risk.equity,
                wallet_balance,
                risk.maintenance_margin,
                margin_ratio,
                margin_ratio,
                margin_ratio,
                exchange_margin_ratio,
                exchange_margin_ratio,
                exchange_margin_ratio,
                risk.account_liquidation_move,
                nearest,
            )
            for resolution in (MINUTE, HOUR)
        ],
    )


class _Compiled:
    """A statement compiled once from the models, run on the driver's cursor with plain values.

    The hot path of every cycle: SQLAlchemy's per-execution and per-row handling costs more than
    SQLite's own work. Values must already be in their stored form (epoch ms, no JSON). The
    cursor belongs to the transaction's connection, so it commits or rolls back with it; driver
    errors are wrapped by `storage_errors` like any other.
    """

    def __init__(self, statement: Any, conn: Connection) -> None:
        compiled = statement.compile(dialect=conn.dialect)
        self.sql = str(compiled)
        self.order: tuple[str, ...] = tuple(compiled.positiontup or ())

    def scalar_row(self, conn: Connection, row: tuple[Any, ...]) -> Any:
        """The first column of the first row returned (a row given in parameter order)."""
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.sql, row)
            first = cursor.fetchone()
            return None if first is None else first[0]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise StorageUnavailable(f"{self.sql.split('(')[0].strip()}: {exc}") from exc
        finally:
            cursor.close()

    def execute_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows already as tuples in the statement's parameter order."""
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(self.sql, rows)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise StorageUnavailable(f"{self.sql.split('(')[0].strip()}: {exc}") from exc
        finally:
            cursor.close()


@dataclass(frozen=True, slots=True)
class _Statements:
    """The statements of every cycle, built once per dialect."""

    snapshot: _Compiled
    positions: _Compiled
    rollup: _Compiled


_BUILT: dict[str, _Statements] = {}
# The cycle builds its rows as plain tuples in these orders (checked against the models).
SNAPSHOT_ROW = (
    "account_id",
    "taken_at",
    "equity",
    "wallet_balance",
    "maintenance_margin",
    "initial_margin",
    "margin_ratio",
    "exchange_margin_ratio",
    "account_liquidation_move",
    "nearest_distance",
    "reported_equity",
    "reported_maintenance_margin",
    "reported_margin_ratio",
    "move_sigmas_hourly",
    "move_sigmas_daily",
)
POSITION_ROW = (
    "snapshot_id",
    "ordinal",
    "leg_id",
    "mark_price",
    "unrealized_pnl",
    "maintenance_margin",
    "liquidation_price",
    "exchange_liquidation_price",
    "stop_price",
    "stop_status",
)
ROLLUP_ROW = (
    "account_id",
    "resolution",
    "bucket_start",
    "samples",
    "last_at",
    "equity",
    "wallet_balance",
    "maintenance_margin",
    "margin_ratio",
    "margin_ratio_min",
    "margin_ratio_max",
    "exchange_margin_ratio",
    "exchange_margin_ratio_min",
    "exchange_margin_ratio_max",
    "account_liquidation_move",
    "min_distance",
)


def _with_binds(statement: Any, columns: Sequence[str]) -> Any:
    return statement.values({column: bindparam(column) for column in columns})


def _in_order(compiled: _Compiled, table: Any, row: tuple[str, ...]) -> _Compiled:
    """The compiled statement, after checking that it takes every column of `row` in that order."""
    columns = tuple(c.name for c in table.c if c.name != "id")
    if compiled.order != row or set(columns) != set(row):
        raise RuntimeError(
            f"{table.name}: statement takes {compiled.order}, the table has {columns}, "
            f"the cycle writes {row}"
        )
    return compiled


def _statements(conn: Connection) -> _Statements:
    built = _BUILT.get(conn.dialect.name)
    if built is None:
        snapshot = AccountSnapshot.__table__
        built = _Statements(
            snapshot=_in_order(
                _Compiled(
                    _with_binds(insert(AccountSnapshot), SNAPSHOT_ROW).returning(
                        AccountSnapshot.id
                    ),
                    conn,
                ),
                snapshot,
                SNAPSHOT_ROW,
            ),
            positions=_in_order(
                _Compiled(_with_binds(insert(PositionSnapshot), POSITION_ROW), conn),
                PositionSnapshot.__table__,
                POSITION_ROW,
            ),
            rollup=_in_order(
                _Compiled(_rollup_upsert(dialect_insert(conn)), conn),
                AccountRollup.__table__,
                ROLLUP_ROW,
            ),
        )
        _BUILT[conn.dialect.name] = built
    return built


def _rollup_upsert(dialect_insert: Any) -> Any:
    statement = _with_binds(
        dialect_insert(AccountRollup), [c.name for c in AccountRollup.__table__.c]
    )
    new, old = statement.excluded, AccountRollup.__table__.c
    is_newer = new.last_at >= old.last_at

    def last(name: str) -> ColumnElement[Any]:
        return case((is_newer, new[name]), else_=old[name])

    def lowest(name: str) -> ColumnElement[Any]:
        return case(
            (old[name].is_(None), new[name]),
            (new[name].is_(None), old[name]),
            (new[name] < old[name], new[name]),
            else_=old[name],
        )

    def highest(name: str) -> ColumnElement[Any]:
        return case(
            (old[name].is_(None), new[name]),
            (new[name].is_(None), old[name]),
            (new[name] > old[name], new[name]),
            else_=old[name],
        )

    return statement.on_conflict_do_update(
        index_elements=[
            AccountRollup.account_id,
            AccountRollup.resolution,
            AccountRollup.bucket_start,
        ],
        set_={
            "samples": old.samples + new.samples,
            "last_at": last("last_at"),
            "equity": last("equity"),
            "wallet_balance": last("wallet_balance"),
            "maintenance_margin": last("maintenance_margin"),
            "margin_ratio": last("margin_ratio"),
            "exchange_margin_ratio": last("exchange_margin_ratio"),
            "account_liquidation_move": last("account_liquidation_move"),
            "margin_ratio_min": lowest("margin_ratio_min"),
            "margin_ratio_max": highest("margin_ratio_max"),
            "exchange_margin_ratio_min": lowest("exchange_margin_ratio_min"),
            "exchange_margin_ratio_max": highest("exchange_margin_ratio_max"),
            "min_distance": lowest("min_distance"),
        },
    )


def _account_id(conn: Connection, name: str, venue: str, asset: str, now: datetime) -> int:
    found = conn.scalar(select(Account.id).where(Account.name == name))
    if found is None:
        # Several daemons on one PostgreSQL register the same accounts at the same moment: the
        # one that loses the race finds the winner's row.
        conn.execute(
            dialect_insert(conn)(Account)
            .values(name=name, venue=venue, asset=asset, poll_interval=None, created_at=now)
            .on_conflict_do_nothing(index_elements=[Account.name])
        )
        found = conn.scalar(select(Account.id).where(Account.name == name))
    assert found is not None
    return found


def _outbox_rows(
    notifications: Sequence[Notification], sinks: Sequence[str]
) -> list[dict[str, Any]]:
    return [
        {
            "notification_id": notification.id,
            "sink": sink,
            "payload": notification_to_payload(notification),
            "created_at": notification.created_at,
            "attempts": 0,
            "next_attempt_at": notification.created_at,
            "delivered_at": None,
            "last_error": None,
            "dead": False,
        }
        for notification in notifications
        for sink in sinks
    ]


def _enqueue(conn: Connection, rows: list[dict[str, Any]]) -> None:
    # A notification replayed after a crash has the same id: queue it once per sink.
    conn.execute(
        dialect_insert(conn)(Outbox).on_conflict_do_nothing(
            index_elements=[Outbox.notification_id, Outbox.sink]
        ),
        rows,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
