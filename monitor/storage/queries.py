"""The read side of the store, for the CLI: accounts, latest snapshots, history, firing alerts.

History with a bucket size combines raw snapshots (grouped in SQL) with the downsampled rows that
retention left, keeping per bucket the last values, the lowest margin ratio, the highest exchange
margin ratio and the smallest distance to liquidation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Select, Table, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.domain.alerts import firing_severity
from monitor.domain.errors import InvalidInput
from monitor.storage.database import Readable
from monitor.storage.decode import firing_since, from_millis, to_millis
from monitor.storage.models import (
    HOUR,
    MARGIN_MODE_NAMES,
    MINUTE,
    SIDE_NAMES,
    Account,
    AccountRollup,
    AccountSnapshot,
    AlertEvent,
    AlertState,
    Outbox,
    PositionLeg,
    PositionRollup,
    PositionSnapshot,
    Symbol,
)
from monitor.storage.retention import distance_expression


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """A stored account."""

    name: str
    venue: str
    asset: str
    poll_interval: float | None
    # How the venue pools the account's margin (a PoolModel value; None if never stored).
    model: str | None = None


@dataclass(frozen=True, slots=True)
class PositionRow:
    """One position of a stored snapshot."""

    symbol: str
    side: str
    margin_mode: str
    quantity: float
    entry_price: float
    leverage: float | None
    mark_price: float
    unrealized_pnl: float
    maintenance_margin: float
    liquidation_price: float | None
    exchange_liquidation_price: float | None
    distance_to_liquidation: float | None
    # The first protective stop and its status ("none", "ok", ...; None if never read).
    stop_price: float | None = None
    stop_status: str | None = None


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A stored account snapshot with its positions."""

    account: str
    taken_at: datetime
    equity: float
    wallet_balance: float
    maintenance_margin: float
    initial_margin: float | None
    margin_ratio: float | None
    exchange_margin_ratio: float | None
    account_liquidation_move: float | None
    nearest_distance: float | None
    reported_equity: float | None
    reported_maintenance_margin: float | None
    reported_margin_ratio: float | None
    positions: tuple[PositionRow, ...]
    move_sigmas_hourly: float | None = None
    move_sigmas_daily: float | None = None


@dataclass(frozen=True, slots=True)
class AccountPoint:
    """An account over one bucket (or one raw snapshot when `samples` is 1 and no bucketing)."""

    at: datetime
    samples: int
    equity: float
    wallet_balance: float
    maintenance_margin: float
    margin_ratio: float | None
    margin_ratio_min: float | None
    margin_ratio_max: float | None
    exchange_margin_ratio: float | None
    exchange_margin_ratio_max: float | None
    account_liquidation_move: float | None
    min_distance: float | None


@dataclass(frozen=True, slots=True)
class PositionPoint:
    """A position over one bucket (or one raw snapshot)."""

    at: datetime
    samples: int
    symbol: str
    side: str
    margin_mode: str
    quantity: float
    entry_price: float
    mark_price: float
    unrealized_pnl: float
    maintenance_margin: float
    liquidation_price: float | None
    exchange_liquidation_price: float | None
    distance_to_liquidation: float | None
    min_distance: float | None


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """A rule firing now, as its stored state says, and since when (its episode's start)."""

    account: str
    rule_key: str
    severity: str
    since: datetime


_account = cast(Table, Account.__table__)
_snapshot = cast(Table, AccountSnapshot.__table__)
_rollup = cast(Table, AccountRollup.__table__)


def _values(row: Any) -> tuple[Any, ...]:
    return tuple(row)


async def accounts(store: Readable) -> list[AccountInfo]:
    """Every stored account, by name."""
    async with store.reading("listing accounts") as conn:
        rows = await conn.execute(
            select(*(_account.c[field.name] for field in fields(AccountInfo))).order_by(
                Account.name
            )
        )
        return [AccountInfo(*row) for row in rows]


async def _account_id(conn: AsyncConnection, account: str) -> int:
    found = await conn.scalar(select(Account.id).where(Account.name == account))
    if found is None:
        known = list(await conn.scalars(select(Account.name).order_by(Account.name)))
        hint = f" (stored accounts: {', '.join(known)})" if known else " (no account stored yet)"
        raise InvalidInput("--account", f"unknown account {account!r}{hint}")
    return found


async def latest_snapshot(store: Readable, account: str) -> StoredSnapshot | None:
    """The account's newest snapshot with its positions; None if it has none."""
    async with store.reading(f"reading the latest snapshot of {account!r}") as conn:
        account_id = await _account_id(conn, account)
        snap = AccountSnapshot
        row = (
            await conn.execute(
                select(*(c for c in _snapshot.c if c.name != "account_id"))
                .where(snap.account_id == account_id)
                .order_by(snap.taken_at.desc(), snap.id.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        positions = await conn.execute(
            _position_columns()
            .where(PositionSnapshot.snapshot_id == row.id)
            .order_by(PositionSnapshot.ordinal)
        )
        stored_positions = tuple(
            PositionRow(
                symbol=p.symbol,
                side=SIDE_NAMES[p.side],
                margin_mode=MARGIN_MODE_NAMES[p.margin_mode],
                quantity=p.quantity,
                entry_price=p.entry_price,
                leverage=p.leverage,
                mark_price=p.mark_price,
                unrealized_pnl=p.unrealized_pnl,
                maintenance_margin=p.maintenance_margin,
                liquidation_price=p.liquidation_price,
                exchange_liquidation_price=p.exchange_liquidation_price,
                distance_to_liquidation=p.distance,
                stop_price=p.stop_price,
                stop_status=p.stop_status,
            )
            for p in positions
        )
        columns: dict[str, Any] = dict(row._mapping)
        del columns["id"]
        return StoredSnapshot(account=account, positions=stored_positions, **columns)


def _position_columns() -> Select[*tuple[Any, ...]]:
    pos, leg = PositionSnapshot, PositionLeg
    query: Select[*tuple[Any, ...]] = (
        select(
            Symbol.name.label("symbol"),
            leg.side,
            leg.margin_mode,
            leg.quantity,
            leg.entry_price,
            leg.leverage,
            pos.mark_price,
            pos.unrealized_pnl,
            pos.maintenance_margin,
            pos.liquidation_price,
            pos.exchange_liquidation_price,
            distance_expression(pos.mark_price, pos.liquidation_price).label("distance"),
            pos.stop_price,
            pos.stop_status,
        )
        .select_from(pos)
        .join(leg, leg.id == pos.leg_id)
        .join(Symbol, Symbol.id == leg.symbol_id)
    )
    return query


def _check_every(every: int | None) -> None:
    if every is not None and (every < MINUTE or every % MINUTE):
        raise InvalidInput("--every", "bucket size must be a whole number of minutes (1m, 5m, 1h)")


async def account_history(
    store: Readable, account: str, since: datetime, until: datetime, every: int | None = None
) -> list[AccountPoint]:
    """The account's snapshots in [since, until); with `every` (seconds) one point per bucket."""
    _check_every(every)
    since_ms, until_ms = to_millis(since), to_millis(until)
    async with store.reading(f"reading the history of {account!r}") as conn:
        account_id = await _account_id(conn, account)
        snap = AccountSnapshot
        taken = type_coerce(snap.taken_at, BigInteger)
        in_range = (snap.account_id == account_id, taken >= since_ms, taken < until_ms)
        if every is None:
            rows = await conn.execute(
                select(
                    snap.taken_at,
                    snap.equity,
                    snap.wallet_balance,
                    snap.maintenance_margin,
                    snap.margin_ratio,
                    snap.exchange_margin_ratio,
                    snap.account_liquidation_move,
                    snap.nearest_distance,
                )
                .where(*in_range)
                .order_by(snap.taken_at, snap.id)
            )
            return [
                AccountPoint(at, 1, eq, wb, mm, mr, mr, mr, emr, emr, move, dist)
                for at, eq, wb, mm, mr, emr, move, dist in rows
            ]
        resolution = _source_resolution(every)
        points = await _rollups(conn, account_id, resolution, since_ms, until_ms)
        if resolution == MINUTE:
            # Minute rows are kept for a shorter period: older buckets come from the hour rows.
            oldest = min((p.at for p in points), default=until)
            older_ms = to_millis(oldest) // (HOUR * 1000) * (HOUR * 1000)
            points += await _rollups(conn, account_id, HOUR, since_ms, older_ms)
        return _merge_accounts(points, every * 1000)


async def _rollups(
    conn: AsyncConnection, account_id: int, resolution: int, since_ms: int, until_ms: int
) -> list[AccountPoint]:
    """Downsampled account rows whose bucket overlaps [since, until)."""
    roll = AccountRollup
    first_bucket = since_ms // (resolution * 1000) * (resolution * 1000)
    rows = await conn.execute(
        select(
            # Plain integers: converting them here is cheaper than a type processor per row.
            type_coerce(roll.bucket_start, BigInteger),
            # The point's other fields are rollup columns of the same names.
            *(_rollup.c[field.name] for field in fields(AccountPoint)[1:]),
        ).where(
            roll.account_id == account_id,
            roll.resolution == resolution,
            type_coerce(roll.bucket_start, BigInteger) >= first_bucket,
            type_coerce(roll.bucket_start, BigInteger) < until_ms,
        )
    )
    return [AccountPoint(from_millis(row[0]), *_values(row)[1:]) for row in rows]


def _source_resolution(every: int) -> int:
    return HOUR if every % HOUR == 0 else MINUTE


def _bucket_of(moment: datetime, every_ms: int) -> datetime:
    return from_millis(to_millis(moment) // every_ms * every_ms)


def _low(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _high(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _merge_accounts(points: Iterable[AccountPoint], every_ms: int) -> list[AccountPoint]:
    groups: dict[int, list[AccountPoint]] = {}
    for point in points:
        groups.setdefault(to_millis(point.at) // every_ms * every_ms, []).append(point)
    merged = []
    for bucket in sorted(groups):
        members = groups[bucket]
        at = from_millis(bucket)
        if len(members) == 1:
            only = members[0]
            merged.append(only if only.at == at else replace(only, at=at))
            continue
        members.sort(key=lambda p: p.at)
        # The latest member's last values win; the extremes combine.
        merged.append(
            replace(
                members[-1],
                at=at,
                samples=sum(p.samples for p in members),
                margin_ratio_min=_low(*(p.margin_ratio_min for p in members)),
                margin_ratio_max=_high(*(p.margin_ratio_max for p in members)),
                exchange_margin_ratio_max=_high(*(p.exchange_margin_ratio_max for p in members)),
                min_distance=_low(*(p.min_distance for p in members)),
            )
        )
    return merged


async def position_history(
    store: Readable,
    account: str,
    symbol: str,
    since: datetime,
    until: datetime,
    every: int | None = None,
) -> list[PositionPoint]:
    """One symbol's positions (every side and margin mode) in [since, until), optionally bucketed."""
    _check_every(every)
    since_ms, until_ms = to_millis(since), to_millis(until)
    async with store.reading(f"reading the history of {account!r} {symbol}") as conn:
        account_id = await _account_id(conn, account)
        symbol_id = await conn.scalar(select(Symbol.id).where(Symbol.name == symbol))
        if symbol_id is None:
            raise InvalidInput("--symbol", f"no position in {symbol!r} was ever stored")
        snap, pos, leg = AccountSnapshot, PositionSnapshot, PositionLeg
        taken = type_coerce(snap.taken_at, BigInteger)
        rows = await conn.execute(
            select(
                snap.taken_at,
                leg.side,
                leg.margin_mode,
                leg.quantity,
                leg.entry_price,
                pos.mark_price,
                pos.unrealized_pnl,
                pos.maintenance_margin,
                pos.liquidation_price,
                pos.exchange_liquidation_price,
                distance_expression(pos.mark_price, pos.liquidation_price),
            )
            .select_from(snap)
            .join(pos, pos.snapshot_id == snap.id)
            .join(leg, leg.id == pos.leg_id)
            .where(
                snap.account_id == account_id,
                taken >= since_ms,
                taken < until_ms,
                leg.symbol_id == symbol_id,
            )
            .order_by(snap.taken_at, snap.id, pos.ordinal)
        )
        points = [
            PositionPoint(
                at,
                1,
                symbol,
                SIDE_NAMES[side],
                MARGIN_MODE_NAMES[mode],
                qty,
                entry,
                mark,
                pnl,
                mm,
                liq,
                exch_liq,
                dist,
                dist,
            )
            for at, side, mode, qty, entry, mark, pnl, mm, liq, exch_liq, dist in rows
        ]
        if every is None:
            return points
        resolution = _source_resolution(every)
        points += await _position_rollups(
            conn, account_id, symbol, symbol_id, resolution, since_ms, until_ms
        )
        if resolution == MINUTE:
            # As for accounts: past the minute period only hour rows are left.
            oldest = min((p.at for p in points), default=until)
            older_ms = to_millis(oldest) // (HOUR * 1000) * (HOUR * 1000)
            points += await _position_rollups(
                conn, account_id, symbol, symbol_id, HOUR, since_ms, older_ms
            )
        return _merge_positions(points, every * 1000)


async def _position_rollups(
    conn: AsyncConnection,
    account_id: int,
    symbol: str,
    symbol_id: int,
    resolution: int,
    since_ms: int,
    until_ms: int,
) -> list[PositionPoint]:
    """Downsampled rows of one symbol whose bucket overlaps [since, until)."""
    roll = PositionRollup
    first_bucket = since_ms // (resolution * 1000) * (resolution * 1000)
    rows = await conn.execute(
        select(
            roll.bucket_start,
            roll.samples,
            roll.side,
            roll.margin_mode,
            roll.quantity,
            roll.entry_price,
            roll.mark_price,
            roll.unrealized_pnl,
            roll.maintenance_margin,
            roll.liquidation_price,
            roll.exchange_liquidation_price,
            distance_expression(roll.mark_price, roll.liquidation_price),
            roll.min_distance,
        ).where(
            roll.account_id == account_id,
            roll.symbol_id == symbol_id,
            roll.resolution == resolution,
            type_coerce(roll.bucket_start, BigInteger) >= first_bucket,
            type_coerce(roll.bucket_start, BigInteger) < until_ms,
        )
    )
    return [
        PositionPoint(r[0], r[1], symbol, SIDE_NAMES[r[2]], MARGIN_MODE_NAMES[r[3]], *r[4:])
        for r in map(_values, rows)
    ]


def _merge_positions(points: Iterable[PositionPoint], every_ms: int) -> list[PositionPoint]:
    merged: dict[tuple[datetime, str, str], PositionPoint] = {}
    for point in sorted(points, key=lambda p: p.at):
        key = (_bucket_of(point.at, every_ms), point.side, point.margin_mode)
        before = merged.get(key)
        merged[key] = replace(
            point,
            at=key[0],
            samples=point.samples + (before.samples if before else 0),
            min_distance=_low(point.min_distance, before.min_distance if before else None),
        )
    return [merged[key] for key in sorted(merged)]


async def firing_alerts(store: Readable, account: str | None = None) -> list[FiringAlert]:
    """Rules whose stored alert state says they are firing, per account and rule."""
    async with store.reading("reading alert state") as conn:
        query = (
            select(Account.name, AlertState.rule_key, AlertState.state, AlertState.updated_at)
            .join(Account, Account.id == AlertState.account_id)
            .order_by(Account.name, AlertState.rule_key)
        )
        if account is not None:
            query = query.where(Account.name == account)
        firing = []
        for name, rule_key, state, updated_at in await conn.execute(query):
            severity = firing_severity(state) if isinstance(state, dict) else None
            if severity is not None:
                since = firing_since(state, updated_at)
                firing.append(FiringAlert(name, rule_key, severity.value, since))
        return firing


async def known_account(store: Readable, account: str) -> bool:
    """Whether the database holds an account of this name."""
    async with store.reading("reading accounts") as conn:
        return await conn.scalar(select(Account.id).where(Account.name == account)) is not None


async def alert_history(
    store: Readable, since: datetime, account: str | None = None
) -> list[dict[str, Any]]:
    """Alert events since `since`, oldest first, each with its per-sink deliveries (the rows
    `alerts --format json` prints and the web API serves)."""
    if account is not None and not await known_account(store, account):
        raise InvalidInput("--account", f"no stored data for account {account!r}")
    async with store.reading("reading the alert history") as conn:
        query = (
            select(
                AlertEvent.at,
                Account.name,
                AlertEvent.rule_key,
                AlertEvent.severity,
                AlertEvent.kind,
                AlertEvent.title,
                AlertEvent.text,
                AlertEvent.facts,
            )
            .join(Account, Account.id == AlertEvent.account_id)
            .where(AlertEvent.at >= since)
            .order_by(AlertEvent.at, AlertEvent.id)
        )
        if account is not None:
            query = query.where(Account.name == account)
        events = (await conn.execute(query)).all()
        ids = sorted({str(e.facts["notification_id"]) for e in events if _notification_id(e.facts)})
        deliveries: dict[str, list[dict[str, Any]]] = {}
        for chunk in range(0, len(ids), 500):
            rows = await conn.execute(
                select(
                    Outbox.notification_id,
                    Outbox.sink,
                    Outbox.attempts,
                    Outbox.delivered_at,
                    Outbox.dead,
                    Outbox.last_error,
                )
                .where(Outbox.notification_id.in_(ids[chunk : chunk + 500]))
                .order_by(Outbox.sink)
            )
            for row in rows:
                deliveries.setdefault(row.notification_id, []).append(
                    {
                        "sink": row.sink,
                        "state": _delivery_state(row.delivered_at, row.dead),
                        "attempts": row.attempts,
                        "delivered_at": row.delivered_at,
                        "last_error": row.last_error,
                    }
                )
    return [
        {
            "at": e.at,
            "account": e.name,
            "rule": e.rule_key,
            "severity": e.severity,
            "kind": e.kind,
            "title": e.title,
            "text": e.text,
            "suppressed": (e.facts or {}).get("suppressed"),
            "notification_id": _notification_id(e.facts),
            "deliveries": deliveries.get(_notification_id(e.facts) or "", []),
            "facts": e.facts,
        }
        for e in events
    ]


def _notification_id(facts: Any) -> str | None:
    value = facts.get("notification_id") if isinstance(facts, dict) else None
    return str(value) if value else None


def _delivery_state(delivered_at: datetime | None, dead: bool) -> str:
    if delivered_at is not None:
        return "delivered"
    return "dead" if dead else "pending"


# The columns of `history --format json` for an account, and of the web API's history.
ACCOUNT_COLUMNS = ("account", *(field.name for field in fields(AccountPoint)))


def account_row(account: str, point: AccountPoint) -> dict[str, Any]:
    """One account history point as `history --format json` prints it."""
    return {"account": account, **{name: getattr(point, name) for name in ACCOUNT_COLUMNS[1:]}}
