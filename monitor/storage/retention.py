"""Retention: raw snapshots, then per-minute rows, then hourly rows, then nothing.

Downsampled rows keep the last value of each bucket plus its extremes (lowest and highest margin
ratio, smallest distance to liquidation), so a dip that lasted ten seconds is never averaged away.
Raw rows are rolled up in whole hours: each bucket is written once, from complete data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    Table,
    and_,
    case,
    delete,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.engine import Connection

from monitor.storage.database import Database
from monitor.storage.decode import to_millis
from monitor.storage.engine import dialect_insert
from monitor.storage.models import (
    HOUR,
    MINUTE,
    Account,
    AccountRollup,
    AccountSnapshot,
    Base,
    PositionLeg,
    PositionRollup,
    PositionSnapshot,
    insert_columns,
)

# A position row is found back from its group's maximum of snapshot_id * ORDINAL_SPAN + ordinal.
ORDINAL_SPAN = 65536
MIN_RAW_PERIOD = timedelta(hours=1)
# After this long rolling up hours back to back, a pause longer than SQLite's busy handler
# sleeps between its retries (another writer gets the lock within about a second).
PRUNE_PAUSE_AFTER_SECONDS = 0.5
PRUNE_PAUSE_SECONDS = 0.15


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each resolution is kept; each period must be at least as long as the previous."""

    raw: timedelta = timedelta(days=7)
    minute: timedelta = timedelta(days=30)
    hour: timedelta = timedelta(days=730)

    def __post_init__(self) -> None:
        if self.raw < MIN_RAW_PERIOD:
            raise ValueError("raw snapshots must be kept at least 1h")
        if not self.raw <= self.minute <= self.hour:
            raise ValueError("retention periods must grow: raw <= minute <= hour")


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What one prune did."""

    raw_cutoff: datetime
    snapshots_rolled_up: int
    position_rows_deleted: int
    minute_rows_deleted: int
    hour_rows_deleted: int


def distance_expression(mark: Any, liquidation: Any) -> ColumnElement[float | None]:
    """|mark - liquidation| / mark in SQL (NULL without a liquidation price or a mark)."""
    return case((mark > 0, func.abs(mark - liquidation) / mark), else_=None)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _bucket(taken_at: ColumnElement[object], resolution: int) -> ColumnElement[int]:
    millis = type_coerce(taken_at, BigInteger)
    return (millis // (resolution * 1000)) * (resolution * 1000)


def _position_rollup(cutoff_ms: int, resolution: int) -> Select[tuple[object, ...]]:
    snap = AccountSnapshot.__table__
    pos = PositionSnapshot.__table__
    leg = PositionLeg.__table__
    bucket = _bucket(snap.c.taken_at, resolution)
    groups = (
        select(
            snap.c.account_id,
            bucket.label("bucket"),
            leg.c.symbol_id,
            leg.c.side,
            leg.c.margin_mode,
            func.count().label("samples"),
            func.max(pos.c.snapshot_id * ORDINAL_SPAN + pos.c.ordinal).label("last_key"),
            func.min(distance_expression(pos.c.mark_price, pos.c.liquidation_price)).label("dist"),
        )
        .select_from(
            pos.join(snap, snap.c.id == pos.c.snapshot_id).join(leg, leg.c.id == pos.c.leg_id)
        )
        # Every account named: the planner then reads the snapshots through the
        # (account_id, taken_at) index instead of scanning the whole position table.
        .where(*_snapshots_before(cutoff_ms))
        .group_by(snap.c.account_id, bucket, leg.c.symbol_id, leg.c.side, leg.c.margin_mode)
        .subquery("groups")
    )
    last = pos.alias("last")
    last_leg = leg.alias("last_leg")
    last_snap = snap.alias("last_snap")
    return (
        select(
            groups.c.account_id,
            literal(resolution, Integer),
            groups.c.bucket,
            groups.c.symbol_id,
            groups.c.side,
            groups.c.margin_mode,
            groups.c.samples,
            type_coerce(last_snap.c.taken_at, BigInteger),
            last_leg.c.quantity,
            last_leg.c.entry_price,
            last.c.mark_price,
            last.c.unrealized_pnl,
            last.c.maintenance_margin,
            last.c.liquidation_price,
            last.c.exchange_liquidation_price,
            groups.c.dist,
        )
        .select_from(groups)
        .join(
            last,
            and_(
                last.c.snapshot_id == groups.c.last_key // ORDINAL_SPAN,
                last.c.ordinal == groups.c.last_key % ORDINAL_SPAN,
            ),
        )
        .join(last_leg, last_leg.c.id == last.c.leg_id)
        .join(last_snap, last_snap.c.id == last.c.snapshot_id)
        .where(groups.c.samples > 0)
    )


def _snapshots_before(cutoff_ms: int) -> tuple[ColumnElement[bool], ...]:
    snap = _table(AccountSnapshot)
    account = _table(Account)
    return (
        snap.c.account_id.in_(select(account.c.id)),
        type_coerce(snap.c.taken_at, BigInteger) < cutoff_ms,
    )


def raw_cutoff(policy: RetentionPolicy, now: datetime) -> datetime:
    """Raw snapshots taken before this hour are rolled up and deleted."""
    return _hour_floor(now - policy.raw)


def roll_up_batch(conn: Connection, cutoff: datetime) -> tuple[int, int] | None:
    """Roll up and delete the oldest hour of raw snapshots before `cutoff`, in the caller's
    transaction: (snapshots, position rows) deleted, or None when none is left.

    One hour per transaction keeps the write lock short, so a prune started from the command line
    never makes the running daemon's cycle wait past its busy timeout; an interrupted prune leaves
    whole hours rolled up and the next run carries on.
    """
    snap = _table(AccountSnapshot)
    pos = _table(PositionSnapshot)
    account = _table(Account)
    taken = type_coerce(snap.c.taken_at, BigInteger)
    cutoff_ms = to_millis(cutoff)
    # Every lookup goes through the (account_id, taken_at) index: a scan of the
    # whole table per hour would make a prune of weeks of snapshots take hours.
    oldest_of_account = (
        select(func.min(taken)).where(snap.c.account_id == account.c.id).scalar_subquery()
    )
    oldest = conn.scalar(select(func.min(oldest_of_account)).select_from(account))
    if oldest is None or oldest >= cutoff_ms:
        return None
    batch_end = min(int(oldest) // (HOUR * 1000) * (HOUR * 1000) + HOUR * 1000, cutoff_ms)
    for resolution in (MINUTE, HOUR):
        conn.execute(
            dialect_insert(conn)(PositionRollup)
            .from_select(insert_columns(PositionRollup), _position_rollup(batch_end, resolution))
            # A snapshot stored late into an already rolled-up hour is dropped, not merged.
            .on_conflict_do_nothing()
        )
    in_batch = _snapshots_before(batch_end)
    positions = conn.execute(
        delete(pos).where(pos.c.snapshot_id.in_(select(snap.c.id).where(*in_batch)))
    ).rowcount
    snapshots = conn.execute(delete(snap).where(*in_batch)).rowcount
    return snapshots, positions


def unused_legs(conn: Connection) -> tuple[list[int], int]:
    """Position legs no stored position uses, and the newest snapshot id that read saw.

    Run in a read transaction: it scans the whole position table, which must not happen while
    holding the write lock the daemon's cycles wait for.
    """
    pos = _table(PositionSnapshot)
    leg = _table(PositionLeg)
    newest = select(func.coalesce(func.max(pos.c.snapshot_id), 0)).scalar_subquery()
    rows = conn.execute(
        select(leg.c.id, newest).where(leg.c.id.not_in(select(pos.c.leg_id).distinct()))
    ).all()
    return [row[0] for row in rows], (int(rows[0][1]) if rows else 0)


def delete_legs(conn: Connection, leg_ids: list[int], newest_snapshot_id: int) -> None:
    """Delete legs `unused_legs` found, except any a snapshot stored since then uses again (a
    position back at earlier terms), in the caller's transaction."""
    pos = _table(PositionSnapshot)
    leg = _table(PositionLeg)
    used_since = select(pos.c.leg_id).where(pos.c.snapshot_id > newest_snapshot_id)
    for start in range(0, len(leg_ids), 500):
        conn.execute(
            delete(leg).where(
                leg.c.id.in_(leg_ids[start : start + 500]), leg.c.id.not_in(used_since)
            )
        )


def expire(conn: Connection, policy: RetentionPolicy, now: datetime) -> tuple[int, int]:
    """Delete minute and hour rows past their periods, in the caller's transaction: (minute
    rows, hour rows) deleted."""
    minute_cutoff = to_millis(_hour_floor(now - policy.minute))
    hour_cutoff = to_millis(_hour_floor(now - policy.hour))
    minutes = conn.execute(
        delete(AccountRollup).where(
            AccountRollup.resolution == MINUTE,
            type_coerce(AccountRollup.bucket_start, BigInteger) < minute_cutoff,
        )
    )
    conn.execute(
        delete(PositionRollup).where(
            PositionRollup.resolution == MINUTE,
            type_coerce(PositionRollup.bucket_start, BigInteger) < minute_cutoff,
        )
    )
    hours = conn.execute(
        delete(AccountRollup).where(
            AccountRollup.resolution == HOUR,
            type_coerce(AccountRollup.bucket_start, BigInteger) < hour_cutoff,
        )
    )
    conn.execute(
        delete(PositionRollup).where(
            PositionRollup.resolution == HOUR,
            type_coerce(PositionRollup.bucket_start, BigInteger) < hour_cutoff,
        )
    )
    return minutes.rowcount, hours.rowcount


async def prune(
    db: Database, policy: RetentionPolicy, now: datetime, forget_legs: Callable[[], None]
) -> PruneReport:
    """Downsample raw snapshots past their period and delete what is past the longest one.

    Raw snapshots are rolled up one hour per transaction (see `roll_up_batch`). `forget_legs`
    runs after each commit that may have deleted position legs (the id cache may hold them).
    """
    cutoff = raw_cutoff(policy, now)
    snapshots = positions = 0
    busy_since = time.monotonic()
    while True:
        # Deleted legs may still be cached by a long-idle position: forget them all.
        done = await db.write(
            "pruning old snapshots", lambda conn: roll_up_batch(conn, cutoff), forget_legs
        )
        if done is None:
            break
        snapshots, positions = snapshots + done[0], positions + done[1]
        if db.is_sqlite and time.monotonic() - busy_since > PRUNE_PAUSE_AFTER_SECONDS:
            # Another process waiting for the lock (the daemon, when this prune runs from
            # the command line) polls for it about every 100 ms: let it have its turn.
            await asyncio.sleep(PRUNE_PAUSE_SECONDS)
            busy_since = time.monotonic()
    if snapshots:
        async with db.reading("finding unused position legs") as conn:
            legs, newest = await conn.run_sync(unused_legs)
        if legs:
            await db.write(
                "deleting unused position legs",
                lambda conn: delete_legs(conn, legs, newest),
                forget_legs,
            )
    minutes, hours = await db.write(
        "deleting expired history", lambda conn: expire(conn, policy, now)
    )
    await db.maintain()
    return PruneReport(cutoff, snapshots, positions, minutes, hours)
