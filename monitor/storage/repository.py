"""The write side of the store: one transaction per poll cycle, the outbox, alert state, silences."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.domain.errors import InvalidInput, StorageError
from monitor.domain.model import Position, Snapshot, Tier
from monitor.domain.notification import Notification
from monitor.ports import AlertEventRecord, OutboxEntry
from monitor.storage import retention
from monitor.storage.engine import create_engine, storage_errors
from monitor.storage.models import (
    MARGIN_MODE_CODES,
    SIDE_CODES,
    Account,
    AccountSnapshot,
    AlertEvent,
    AlertState,
    Outbox,
    PositionLeg,
    PositionSnapshot,
    Silence,
    Symbol,
    TierTable,
)
from monitor.storage.retention import RetentionPolicy
from monitor.storage.serialize import notification_from_payload, notification_to_payload

# A cached position leg is trusted this long without being used; retention never deletes a leg
# used more recently than its shortest period (at least an hour), so a cached id stays valid.
LEG_CACHE_SECONDS = 600.0

_LegKey = tuple[int, int, int, int, float, float, float | None]


@dataclass(frozen=True, slots=True)
class SilenceInfo:
    """An active or past silence of an account's notifications."""

    id: int
    account: str
    until: datetime
    created_at: datetime
    reason: str


class SqlStore:
    """Snapshot store on SQLite or PostgreSQL; implements `SnapshotStore` and `OutboxStore`."""

    def __init__(self, engine: AsyncEngine, *, retention_policy: RetentionPolicy | None = None):
        self.engine = engine
        self.retention_policy = retention_policy or RetentionPolicy()
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer; queueing here keeps concurrent account cycles from waiting on
        # the file lock inside aiosqlite's threads.
        self._write_lock = asyncio.Lock()
        self._account_ids: dict[str, int] = {}
        self._symbol_ids: dict[str, int] = {}
        self._legs: dict[_LegKey, tuple[int, float]] = {}
        self._tiers: dict[tuple[str, int], str] = {}

    @classmethod
    def open(cls, url: str, *, retention_policy: RetentionPolicy | None = None) -> SqlStore:
        """A store on the database at a plain URL (`sqlite:///PATH`, `postgresql://...`)."""
        return cls(create_engine(url), retention_policy=retention_policy)

    async def close(self) -> None:
        """Release the database connections."""
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self, action: str) -> AsyncIterator[AsyncConnection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), errors as StorageError."""
        async with self._write_lock:
            with storage_errors(action):
                async with self.engine.connect() as conn:
                    await conn.execution_options(monitor_write=True)
                    async with conn.begin():
                        yield conn

    @asynccontextmanager
    async def reading(self, action: str) -> AsyncIterator[AsyncConnection]:
        """A read-only connection, errors as StorageError."""
        with storage_errors(action):
            async with self.engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def cycle(self) -> AsyncIterator[Cycle]:
        """One poll cycle's writes in one transaction; rolled back on error or cancellation."""
        async with self.transaction("storing the poll cycle") as conn:
            writer = Cycle(self, conn)
            yield writer
        # Ids created inside the transaction are only valid once it has committed.
        writer.publish_caches()

    # -- accounts -------------------------------------------------------------------------

    async def register_account(
        self, name: str, *, venue: str, asset: str, poll_interval: float | None, now: datetime
    ) -> None:
        """Create or update a configured account (its poll interval lets `status` judge staleness)."""
        async with self.transaction(f"registering account {name!r}") as conn:
            account_id = await _account_id(conn, self._account_ids, name, venue, asset, now)
            await conn.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(venue=venue, asset=asset, poll_interval=poll_interval)
            )
            self._account_ids[name] = account_id

    async def account_id(self, conn: AsyncConnection, name: str) -> int | None:
        """The id of a stored account, or None."""
        if name in self._account_ids:
            return self._account_ids[name]
        found = await conn.scalar(select(Account.id).where(Account.name == name))
        if found is not None:
            self._account_ids[name] = found
        return found

    async def last_snapshot_at(self, account: str) -> datetime | None:
        """When the account's newest stored snapshot was taken (None if it has none)."""
        async with self.reading(f"reading the last snapshot of {account!r}") as conn:
            account_id = await self.account_id(conn, account)
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
            account_id = await self.account_id(conn, account)
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
        async with self.transaction("queueing notifications") as conn:
            await _enqueue(conn, self.is_sqlite, notifications, sinks)

    async def due(self, now: datetime, limit: int) -> Sequence[OutboxEntry]:
        """Undelivered, not dead entries whose next attempt is at or before `now`, oldest first."""
        async with self.reading("reading the outbox") as conn:
            rows = await conn.execute(
                select(Outbox.id, Outbox.sink, Outbox.payload, Outbox.attempts)
                .where(
                    Outbox.delivered_at.is_(None),
                    Outbox.dead.is_(False),
                    Outbox.next_attempt_at <= now,
                )
                .order_by(Outbox.created_at, Outbox.id)
                .limit(limit)
            )
            return [
                OutboxEntry(
                    id=row_id,
                    sink=sink,
                    notification=notification_from_payload(payload),
                    attempts=attempts,
                )
                for row_id, sink, payload, attempts in rows
            ]

    async def mark_delivered(self, entry_id: int, at: datetime) -> None:
        """The sink accepted the entry; it is never sent again."""
        async with self.transaction("marking an outbox entry delivered") as conn:
            await conn.execute(
                update(Outbox).where(Outbox.id == entry_id).values(delivered_at=at, last_error=None)
            )

    async def mark_failed(self, entry_id: int, next_attempt_at: datetime, error: str) -> None:
        """A retryable failure: count the attempt and try again at `next_attempt_at`."""
        async with self.transaction("recording a failed delivery") as conn:
            await conn.execute(
                update(Outbox)
                .where(Outbox.id == entry_id)
                .values(
                    attempts=Outbox.attempts + 1, next_attempt_at=next_attempt_at, last_error=error
                )
            )

    async def mark_dead(self, entry_id: int, error: str) -> None:
        """Give up on the entry; it stays stored for inspection."""
        async with self.transaction("recording an undeliverable notification") as conn:
            await conn.execute(
                update(Outbox)
                .where(Outbox.id == entry_id)
                .values(dead=True, attempts=Outbox.attempts + 1, last_error=error)
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

    # -- silences -------------------------------------------------------------------------

    async def add_silence(
        self, account: str, *, until: datetime, reason: str, now: datetime
    ) -> SilenceInfo:
        """Silence an account's notifications until `until`."""
        async with self.transaction(f"silencing {account!r}") as conn:
            account_id = await self.account_id(conn, account)
            if account_id is None:
                raise InvalidInput("account", f"unknown account {account!r}")
            silence_id = await conn.scalar(
                insert(Silence)
                .values(account_id=account_id, until=until, created_at=now, reason=reason)
                .returning(Silence.id)
            )
            assert silence_id is not None
            return SilenceInfo(silence_id, account, until, now, reason)

    async def remove_silence(self, silence_id: int) -> bool:
        """Delete a silence; False if there was none with that id."""
        async with self.transaction("removing a silence") as conn:
            result = await conn.execute(delete(Silence).where(Silence.id == silence_id))
            return bool(result.rowcount)

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
        """Downsample raw snapshots past their period and delete what is past the longest one."""
        async with self.transaction("pruning old snapshots") as conn:
            report = await retention.prune(conn, self.retention_policy, now)
        # Deleted legs may still be cached by a long-idle position; forget them all.
        self._legs.clear()
        return report


class Cycle:
    """Writes of one poll cycle inside the store's transaction (see `SqlStore.cycle`)."""

    def __init__(self, store: SqlStore, conn: AsyncConnection):
        self._store = store
        self._conn = conn
        self._new_accounts: dict[str, int] = {}
        self._new_symbols: dict[str, int] = {}
        self._new_legs: dict[_LegKey, int] = {}
        self._new_tiers: dict[tuple[str, int], str] = {}
        self._snapshot_time: datetime | None = None

    def publish_caches(self) -> None:
        """After commit: remember the ids this cycle created."""
        store = self._store
        store._account_ids.update(self._new_accounts)
        store._symbol_ids.update(self._new_symbols)
        stamp = time.monotonic()
        for key, leg_id in self._new_legs.items():
            store._legs[key] = (leg_id, stamp)
        store._tiers.update(self._new_tiers)

    async def _account(self, name: str, venue: str, asset: str, now: datetime) -> int:
        known = self._store._account_ids.get(name) or self._new_accounts.get(name)
        if known is not None:
            return known
        account_id = await _account_id(self._conn, {}, name, venue, asset, now)
        self._new_accounts[name] = account_id
        return account_id

    async def _symbol(self, name: str) -> int:
        known = self._store._symbol_ids.get(name) or self._new_symbols.get(name)
        if known is not None:
            return known
        symbol_id = await self._conn.scalar(select(Symbol.id).where(Symbol.name == name))
        if symbol_id is None:
            symbol_id = await self._conn.scalar(
                insert(Symbol).values(name=name).returning(Symbol.id)
            )
        assert symbol_id is not None
        self._new_symbols[name] = symbol_id
        return symbol_id

    async def _leg(self, key: _LegKey, taken_at: datetime) -> int:
        cached = self._store._legs.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[1] < LEG_CACHE_SECONDS:
            self._new_legs[key] = cached[0]
            return cached[0]
        if key in self._new_legs:
            return self._new_legs[key]
        account_id, symbol_id, side, margin_mode, quantity, entry_price, leverage = key
        leg_id = await self._conn.scalar(
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
            leg_id = await self._conn.scalar(
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
        self._new_legs[key] = leg_id
        return leg_id

    async def _record_tiers(
        self, venue: str, symbol_id: int, tiers: tuple[Tier, ...], taken_at: datetime
    ) -> None:
        if not tiers:
            return
        table = [
            {"floor": t.floor, "cap": t.cap, "mmr": t.mmr, "deduction": t.deduction} for t in tiers
        ]
        canonical = json.dumps(table, sort_keys=True)
        key = (venue, symbol_id)
        known = self._new_tiers.get(key) or self._store._tiers.get(key)
        if known is None:
            latest = await self._conn.scalar(
                select(TierTable.tiers)
                .where(TierTable.venue == venue, TierTable.symbol_id == symbol_id)
                .order_by(TierTable.first_seen.desc(), TierTable.id.desc())
                .limit(1)
            )
            known = None if latest is None else json.dumps(latest, sort_keys=True)
        if known != canonical:
            await self._conn.execute(
                insert(TierTable).values(
                    venue=venue, symbol_id=symbol_id, tiers=table, first_seen=taken_at
                )
            )
        self._new_tiers[key] = canonical

    async def add_snapshot(self, snapshot: Snapshot) -> None:
        """Store the account snapshot with all its positions (and a changed tier table)."""
        state, risk = snapshot.state, snapshot.risk
        if snapshot.taken_at.tzinfo is None:
            raise StorageError(f"snapshot of {snapshot.account!r}: taken_at has no timezone")
        if len(state.positions) != len(risk.positions):
            raise StorageError(
                f"snapshot of {snapshot.account!r}: {len(state.positions)} positions but "
                f"{len(risk.positions)} computed results"
            )
        venue = state.venue.value
        self._snapshot_time = snapshot.taken_at
        account_id = await self._account(snapshot.account, venue, state.asset, snapshot.taken_at)
        distances = [
            p.distance_to_liquidation
            for p in risk.positions
            if p.distance_to_liquidation is not None
        ]
        snapshot_id = await self._conn.scalar(
            insert(AccountSnapshot)
            .values(
                account_id=account_id,
                taken_at=snapshot.taken_at,
                equity=risk.equity,
                wallet_balance=state.wallet_balance,
                maintenance_margin=risk.maintenance_margin,
                initial_margin=state.reported.initial_margin,
                margin_ratio=risk.margin_ratio,
                exchange_margin_ratio=risk.exchange_margin_ratio,
                account_liquidation_move=risk.account_liquidation_move,
                nearest_distance=min(distances) if distances else None,
                reported_equity=state.reported.equity,
                reported_maintenance_margin=state.reported.maintenance_margin,
                reported_margin_ratio=state.reported.margin_ratio,
            )
            .returning(AccountSnapshot.id)
        )
        rows = []
        for ordinal, (position, computed) in enumerate(
            zip(state.positions, risk.positions, strict=True)
        ):
            symbol_id = await self._symbol(position.symbol)
            await self._record_tiers(venue, symbol_id, position.tiers, snapshot.taken_at)
            leg_id = await self._leg(_leg_key(account_id, symbol_id, position), snapshot.taken_at)
            rows.append(
                {
                    "snapshot_id": snapshot_id,
                    "ordinal": ordinal,
                    "leg_id": leg_id,
                    "mark_price": position.mark_price,
                    "unrealized_pnl": computed.unrealized_pnl,
                    "maintenance_margin": computed.maintenance_margin,
                    "liquidation_price": computed.liquidation_price,
                    "exchange_liquidation_price": position.exchange_liquidation_price,
                }
            )
        if rows:
            await self._conn.execute(insert(PositionSnapshot), rows)

    async def save_alert_states(
        self, account: str, states: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Upsert the alert state machine's JSON state per rule key."""
        if not states:
            return
        account_id = await self._existing_account(account)
        updated_at = self._snapshot_time or datetime.now(UTC)
        dialect_insert = sqlite.insert if self._store.is_sqlite else postgresql.insert
        statement = dialect_insert(AlertState)
        statement = statement.on_conflict_do_update(
            index_elements=[AlertState.account_id, AlertState.rule_key],
            set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        )
        await self._conn.execute(
            statement,
            [
                {
                    "account_id": account_id,
                    "rule_key": rule_key,
                    "state": dict(state),
                    "updated_at": updated_at,
                }
                for rule_key, state in states.items()
            ],
        )

    async def delete_alert_states(self, account: str, rule_keys: Sequence[str]) -> None:
        """Forget the state of rules that no longer exist (removed from the configuration)."""
        if not rule_keys:
            return
        account_id = await self._existing_account(account)
        await self._conn.execute(
            delete(AlertState).where(
                and_(AlertState.account_id == account_id, AlertState.rule_key.in_(rule_keys))
            )
        )

    async def add_alert_events(self, account: str, events: Sequence[AlertEventRecord]) -> None:
        """Record what the alert rules did in this cycle."""
        if not events:
            return
        account_id = await self._existing_account(account)
        await self._conn.execute(
            insert(AlertEvent),
            [
                {
                    "account_id": account_id,
                    "rule_key": event.rule_key,
                    "severity": str(event.severity),
                    "kind": str(event.kind),
                    "at": event.at,
                    "title": event.title,
                    "text": event.text,
                    "facts": _jsonable(event.facts),
                }
                for event in events
            ],
        )

    async def enqueue(self, notifications: Sequence[Notification], sinks: Sequence[str]) -> None:
        """Queue every notification for every sink (a replayed notification id is ignored)."""
        await _enqueue(self._conn, self._store.is_sqlite, notifications, sinks)

    async def _existing_account(self, name: str) -> int:
        known = self._store._account_ids.get(name) or self._new_accounts.get(name)
        if known is not None:
            return known
        found = await self._conn.scalar(select(Account.id).where(Account.name == name))
        if found is None:
            raise StorageError(
                f"account {name!r} has no stored snapshot or registration yet; "
                "add its snapshot first or register the account"
            )
        self._new_accounts[name] = found
        return found


async def _account_id(
    conn: AsyncConnection,
    cache: dict[str, int],
    name: str,
    venue: str,
    asset: str,
    now: datetime,
) -> int:
    if name in cache:
        return cache[name]
    found = await conn.scalar(select(Account.id).where(Account.name == name))
    if found is None:
        found = await conn.scalar(
            insert(Account)
            .values(name=name, venue=venue, asset=asset, poll_interval=None, created_at=now)
            .returning(Account.id)
        )
    assert found is not None
    return found


async def _enqueue(
    conn: AsyncConnection,
    is_sqlite: bool,
    notifications: Sequence[Notification],
    sinks: Sequence[str],
) -> None:
    rows = [
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
    if not rows:
        return
    dialect_insert = sqlite.insert if is_sqlite else postgresql.insert
    # A notification replayed after a crash has the same id: queue it once per sink.
    await conn.execute(
        dialect_insert(Outbox).on_conflict_do_nothing(
            index_elements=[Outbox.notification_id, Outbox.sink]
        ),
        rows,
    )


def _leg_key(account_id: int, symbol_id: int, position: Position) -> _LegKey:
    return (
        account_id,
        symbol_id,
        SIDE_CODES[position.side.value],
        MARGIN_MODE_CODES[position.margin_mode.value],
        position.quantity,
        position.entry_price,
        position.leverage,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
