"""The per-cycle writer: one poll cycle's writes, collected in memory and run in one transaction.

`SqlStore.cycle` hands out a `Cycle`; its `flush` runs when the `async with` block ends, inside
`Database.write`, and `publish` hands the ids it found to the id cache once that committed. An
exception or cancellation inside the block writes nothing. The account snapshot, its position
rows and the rollups go through the fast path (`monitor.storage.fastpath`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from monitor.domain.model import Position, Snapshot, Tier
from monitor.domain.notification import Notification
from monitor.domain.stops import position_stops
from monitor.errors import LeaseLost, StorageRefused
from monitor.ports import AlertEventRecord
from monitor.storage import fastpath
from monitor.storage.accounts import ensure_account
from monitor.storage.database import Database
from monitor.storage.decode import to_millis
from monitor.storage.engine import dialect_insert
from monitor.storage.ids import LEG_CACHE_SECONDS, KnownPositions, LegKey, PendingIds, PositionTerms
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
from monitor.storage.outbox import enqueue_rows, outbox_rows


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
            raise StorageRefused(
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
