"""The store the daemon and the CLI open: a façade over the storage modules, one idea each.

`SqlStore` implements the ports `SnapshotStore` and `OutboxStore` by handing each call to its
module; none of them imports this one, and every arrow ends at the database handle:

    repository (SqlStore)       this façade
    cycle                       one poll cycle's writes in one transaction
    accounts, outbox, silences  accounts and alert state read at start; the outbox and sink
                                states; silences
    retention                   downsampling and deleting old history (prune)
    fastpath, ids               the cycle's raw-driver statements; the id cache
    database                    the engine, the single writer (a thread on SQLite), reads

The CLI's reads are `monitor.storage.queries` (on anything with `reading`, this store included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.domain.notification import Notification
from monitor.ports import HeldDelivery, OutboxEntry, SinkHealth
from monitor.storage import retention
from monitor.storage.accounts import Accounts
from monitor.storage.cycle import Cycle
from monitor.storage.database import Database
from monitor.storage.engine import create_engine
from monitor.storage.ids import IdCache
from monitor.storage.outbox import SqlOutbox
from monitor.storage.retention import RetentionPolicy
from monitor.storage.silences import SilenceInfo, Silences

__all__ = ["Cycle", "SilenceInfo", "SqlStore"]

T = TypeVar("T")


class SqlStore:
    """Snapshot store on SQLite or PostgreSQL; implements `SnapshotStore` and `OutboxStore`."""

    def __init__(self, engine: AsyncEngine, *, retention_policy: RetentionPolicy | None = None):
        self.db = Database(engine)
        self.retention_policy = retention_policy or RetentionPolicy()
        self._ids = IdCache()
        self._accounts = Accounts(self.db, self._ids)
        self._outbox = SqlOutbox(self.db)
        self._silences = Silences(self.db)

    @classmethod
    def open(cls, url: str, *, retention_policy: RetentionPolicy | None = None) -> SqlStore:
        """A store on the database at a plain URL (`sqlite:///PATH`, `postgresql://...`)."""
        return cls(create_engine(url), retention_policy=retention_policy)

    @property
    def engine(self) -> AsyncEngine:
        """The async engine every read runs on."""
        return self.db.engine

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is SQLite (else PostgreSQL)."""
        return self.db.is_sqlite

    @property
    def lease_holder(self) -> str | None:
        """PostgreSQL shared by several daemons: this daemon's name (see `Database`)."""
        return self.db.lease_holder

    @lease_holder.setter
    def lease_holder(self, name: str | None) -> None:
        self.db.lease_holder = name

    @property
    def claim_grace(self) -> timedelta:
        """How long after a daemon's heartbeat expired its outbox claims may be taken over."""
        return self.db.claim_grace

    @claim_grace.setter
    def claim_grace(self, grace: timedelta) -> None:
        self.db.claim_grace = grace

    async def close(self) -> None:
        """Release the database connections (again: no effect); later writes fail."""
        await self.db.close()

    async def write(
        self,
        action: str,
        work: Callable[[Connection], T],
        on_commit: Callable[[], None] | None = None,
    ) -> T:
        """Run `work` in one write transaction; `on_commit` runs only once it has committed."""
        return await self.db.write(action, work, on_commit)

    def reading(self, action: str) -> AbstractAsyncContextManager[AsyncConnection]:
        """A read-only connection, errors as StorageError."""
        return self.db.reading(action)

    @asynccontextmanager
    async def cycle(self) -> AsyncIterator[Cycle]:
        """One poll cycle's writes in one transaction; nothing is written on error or cancellation."""
        writer = Cycle(self.db, self._ids.pending())
        yield writer
        await self.write("storing the poll cycle", writer.flush, writer.publish)

    # -- accounts -------------------------------------------------------------------------

    async def register_account(
        self, name: str, *, venue: str, asset: str, poll_interval: float | None, now: datetime
    ) -> None:
        """Create or update a configured account (its poll interval lets `status` judge staleness)."""
        await self._accounts.register(
            name, venue=venue, asset=asset, poll_interval=poll_interval, now=now
        )

    async def last_snapshot_at(self, account: str) -> datetime | None:
        """When the account's newest stored snapshot was taken (None if it has none)."""
        return await self._accounts.last_snapshot_at(account)

    async def load_alert_states(self, account: str) -> dict[str, dict[str, Any]]:
        """The persisted alert state per rule key ({} for a new account)."""
        return await self._accounts.alert_states(account)

    # -- outbox ---------------------------------------------------------------------------

    async def enqueue(self, notifications: Sequence[Notification], sinks: Sequence[str]) -> None:
        """Queue every notification for every sink in its own transaction."""
        await self._outbox.enqueue(notifications, sinks)

    async def enqueue_held(self, deliveries: Sequence[HeldDelivery], now: datetime) -> None:
        """Store what was handled in memory, in one transaction."""
        await self._outbox.enqueue_held(deliveries, now)

    async def due(self, now: datetime, limit: int) -> Sequence[OutboxEntry]:
        """Entries due at `now`, oldest first (claimed for this daemon when shared)."""
        return await self._outbox.due(now, limit)

    async def retry_times(self, now: datetime) -> dict[str, datetime]:
        """For each sink with entries waiting for a retry, the earliest one."""
        return await self._outbox.retry_times(now)

    async def retry_now(self, sink: str, now: datetime) -> None:
        """The sink is back: its entries waiting for a retry are due at `now`."""
        await self._outbox.retry_now(sink, now)

    async def still_claimed(self, entry_id: int) -> bool:
        """Just before sending: whether the row is still this daemon's claim."""
        return await self._outbox.still_claimed(entry_id)

    async def mark_delivered(self, entry_id: int, at: datetime) -> None:
        """The sink accepted the entry; it is never sent again."""
        await self._outbox.mark_delivered(entry_id, at)

    async def mark_failed(self, entry_id: int, next_attempt_at: datetime, error: str) -> None:
        """A retryable failure: count the attempt and try again at `next_attempt_at`."""
        await self._outbox.mark_failed(entry_id, next_attempt_at, error)

    async def postpone(
        self, entry_ids: Sequence[int], next_attempt_at: datetime, note: str
    ) -> None:
        """Entries not tried because their sink is failing: due again at `next_attempt_at`."""
        await self._outbox.postpone(entry_ids, next_attempt_at, note)

    async def mark_dead(self, entry_id: int, error: str, *, attempted: bool = True) -> None:
        """Give up on the entry; it stays stored for inspection."""
        await self._outbox.mark_dead(entry_id, error, attempted=attempted)

    async def depth(self) -> int:
        """How many entries are still waiting (undelivered and not dead)."""
        return await self._outbox.depth()

    async def held_before(self, sink: str, cutoff: datetime) -> Sequence[OutboxEntry]:
        """The sink's waiting entries created before `cutoff`, oldest first."""
        return await self._outbox.held_before(sink, cutoff)

    async def bury(self, entry_ids: Sequence[int], reason: str) -> None:
        """Mark entries dead with `reason` without counting an attempt."""
        await self._outbox.bury(entry_ids, reason)

    async def held_counts(self) -> dict[str, int]:
        """Waiting (undelivered, not dead) entries per sink."""
        return await self._outbox.held_counts()

    async def sink_states(self) -> dict[str, SinkHealth]:
        """Every stored sink state by sink name."""
        return await self._outbox.sink_states()

    async def save_sink_state(self, health: SinkHealth, now: datetime) -> None:
        """Store how a sink is doing (a pending retry request is kept)."""
        await self._outbox.save_sink_state(health, now)

    async def clear_retry_request(self, sink: str, requested_at: datetime) -> None:
        """The daemon acted on the retry request made at `requested_at`."""
        await self._outbox.clear_retry_request(sink, requested_at)

    async def forget_sinks(self, keep: Sequence[str]) -> None:
        """Drop the stored state of every sink not in `keep`."""
        await self._outbox.forget_sinks(keep)

    async def request_retry(self, sink: str, now: datetime, revive_since: datetime) -> int:
        """`alerts --retry SINK`: ask the daemon to try the sink at once; returns how many dead
        entries were revived."""
        return await self._outbox.request_retry(sink, now, revive_since)

    async def check_writable(self) -> None:
        """Raises StorageError while the database refuses writes (see `Database`)."""
        await self.db.check_writable()

    async def free_space(self) -> None:
        """On SQLite, give back what the write-ahead log holds (see `Database`)."""
        await self.db.free_space()

    # -- silences -------------------------------------------------------------------------

    async def add_silence(
        self, account: str, *, until: datetime, reason: str, now: datetime
    ) -> SilenceInfo:
        """Silence an account's notifications until `until`."""
        return await self._silences.add(account, until=until, reason=reason, now=now)

    async def remove_silence(self, silence_id: int) -> bool:
        """Delete a silence; False if there was none with that id."""
        return await self._silences.remove(silence_id)

    async def silenced_until(self, account: str, now: datetime) -> datetime | None:
        """When the account's last active silence ends (None: notifications are not silenced)."""
        return await self._silences.silenced_until(account, now)

    async def silence_ends(self, now: datetime) -> dict[str, datetime]:
        """Every silenced account's last active silence end (one read for all accounts)."""
        return await self._silences.ends(now)

    async def active_silences(self, now: datetime, account: str | None = None) -> list[SilenceInfo]:
        """Silences still in force at `now`, for one account or all."""
        return await self._silences.active(now, account)

    # -- retention ------------------------------------------------------------------------

    async def prune(self, now: datetime) -> retention.PruneReport:
        """Downsample raw snapshots past their period and delete what is past the longest one
        (see `retention.prune`)."""
        return await retention.prune(self.db, self.retention_policy, now, self._ids.forget_legs)
