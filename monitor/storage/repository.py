"""The write side of the store: one transaction per poll cycle, the outbox, alert state, silences.

A cycle collects its writes in memory and runs them as one function in one transaction when the
`async with store.cycle()` block ends; an exception or cancellation inside the block writes nothing.
On SQLite that function runs in the store's single writer thread on a synchronous connection (one
thread hop per cycle instead of one per statement); on PostgreSQL it runs on the async connection.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.domain.errors import LeaseLost, StorageError
from monitor.domain.model import Position, Snapshot, Tier
from monitor.domain.notification import Notification
from monitor.domain.stops import position_stops
from monitor.ports import AlertEventRecord, HeldDelivery, OutboxEntry, SinkHealth
from monitor.storage import fastpath, retention
from monitor.storage.accounts import Accounts, ensure_account
from monitor.storage.database import Database
from monitor.storage.engine import (
    create_engine,
    dialect_insert,
)
from monitor.storage.ids import (
    LEG_CACHE_SECONDS,
    IdCache,
    KnownPositions,
    LegKey,
    PendingIds,
    PositionTerms,
)
from monitor.storage.models import (
    HOUR,
    MARGIN_MODE_CODES,
    MINUTE,
    SIDE_CODES,
    Account,
    AccountLease,
    AlertEvent,
    AlertState,
    PositionLeg,
    Symbol,
    TierTable,
)
from monitor.storage.outbox import SqlOutbox, enqueue_rows, outbox_rows
from monitor.storage.retention import RetentionPolicy
from monitor.storage.silences import SilenceInfo, Silences
from monitor.storage.sqltypes import to_millis

__all__ = ["Cycle", "SilenceInfo", "SqlStore"]

log = logging.getLogger(__name__)
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

    async def active_silences(self, now: datetime, account: str | None = None) -> list[SilenceInfo]:
        """Silences still in force at `now`, for one account or all."""
        return await self._silences.active(now, account)

    # -- retention ------------------------------------------------------------------------

    async def prune(self, now: datetime) -> retention.PruneReport:
        """Downsample raw snapshots past their period and delete what is past the longest one
        (see `retention.prune`)."""
        return await retention.prune(self.db, self.retention_policy, now, self._ids.forget_legs)


class Cycle:
    """Writes of one poll cycle, collected in order and stored by `SqlStore.cycle` in one go."""

    def __init__(self, db: Database, ids: PendingIds):
        self._db = db
        self._ids = ids
        self._steps: list[Callable[[Connection], None]] = []
        self._snapshot_time: datetime | None = None
        self._leased: str | None = None

    def flush(self, conn: Connection) -> None:
        """Run the collected writes (inside the store's transaction)."""
        self._ids.restart()
        holder = self._db.lease_holder
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
        self._ids.publish()

    async def add_snapshot(self, snapshot: Snapshot) -> None:
        """Store the account snapshot with all its positions (and a changed tier table)."""
        if snapshot.taken_at.tzinfo is None:
            raise StorageError(f"snapshot of {snapshot.account!r}: taken_at has no timezone")
        if len(snapshot.state.positions) != len(snapshot.risk.positions):
            raise StorageError(
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
        rows = outbox_rows(notifications, sinks)
        if rows:
            self._steps.append(lambda conn: enqueue_rows(conn, rows))

    # -- the writes, run by flush() ---------------------------------------------------------

    def _existing_account(self, conn: Connection, name: str) -> int:
        known = self._ids.account(name)
        if known is not None:
            return known
        found = conn.scalar(select(Account.id).where(Account.name == name))
        if found is None:
            raise StorageError(
                f"account {name!r} has no stored snapshot or registration yet; "
                "add its snapshot first or register the account"
            )
        self._ids.set_account(name, found)
        return found

    def _account(self, conn: Connection, name: str, venue: str, asset: str, now: datetime) -> int:
        known = self._ids.account(name)
        if known is None:
            known = ensure_account(conn, name, venue, asset, now)
            self._ids.set_account(name, known)
        return known

    def _symbol(self, conn: Connection, name: str) -> int:
        known = self._ids.symbol(name)
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
        self._ids.set_symbol(name, symbol_id)
        return symbol_id

    def _leg(self, conn: Connection, key: LegKey, taken_at: datetime, now: float) -> int:
        """The leg id of a position's terms: cached (used within LEG_CACHE_SECONDS) or stored."""
        cached = self._ids.leg(key)
        if cached is not None and now - cached[1] < LEG_CACHE_SECONDS:
            self._ids.set_leg(key, cached[0], now)
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
        self._ids.set_leg(key, leg_id, now)
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
        known = self._ids.tiers(venue, symbol)
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
        self._ids.set_tiers(venue, symbol, tiers)

    def _write_snapshot(self, conn: Connection, snapshot: Snapshot) -> None:
        state, risk = snapshot.state, snapshot.risk
        venue = state.venue.value
        account_id = self._account(conn, snapshot.account, venue, state.asset, snapshot.taken_at)
        pool = (state.asset, state.model.value)
        if self._ids.pool(snapshot.account) != pool:
            # A pooled account's figures are in USD, whatever coin its configuration names.
            conn.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(asset=state.asset, model=state.model.value)
            )
            self._ids.set_pool(snapshot.account, pool)
        distances = [
            p.distance_to_liquidation
            for p in risk.positions
            if p.distance_to_liquidation is not None
        ]
        nearest = min(distances) if distances else None
        statements = fastpath.statements(conn)
        taken_ms = to_millis(snapshot.taken_at)
        reported = state.reported
        # In fastpath.SNAPSHOT_ROW order (the model's).
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
            # In fastpath.POSITION_ROW order (the model's).
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
        terms: PositionTerms = (
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
        ids = self._ids
        last = ids.positions(account_id)
        if (
            last is not None
            and now - last.used < LEG_CACHE_SECONDS
            and last.tiers_version == ids.tiers_version
            and not ids.tiers_changed
            and last.terms == terms
        ):
            leg_ids = last.leg_ids
        else:
            leg_ids = tuple(
                self._position_leg(conn, account_id, venue, position, snapshot.taken_at, now)
                for position in positions
            )
        ids.set_positions(account_id, KnownPositions(terms, leg_ids, ids.tiers_version, now))
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
    upsert: fastpath.Compiled,
    account_id: int,
    snapshot: Snapshot,
    taken_ms: int,
    nearest: float | None,
) -> None:
    """Fold the snapshot into its minute and hour rows, so bucketed history reads few rows."""
    risk, wallet_balance = snapshot.risk, snapshot.state.wallet_balance
    margin_ratio, exchange_margin_ratio = risk.margin_ratio, risk.exchange_margin_ratio
    # In fastpath.ROLLUP_ROW order (the model's).
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
