"""What `portfolio-monitor status` reads, written once as plain SQL.

On SQLite it runs on the standard library's sqlite3 and this module imports nothing else from
the storage layer, so `status` starts without SQLAlchemy (see bench/startup.py); on PostgreSQL
the same SQL and the same row handling run on the store's SQLAlchemy connection. Both give the
same `StatusData` for the same database. Besides the reads: the plain `sqlite:///PATH` URL
understood without SQLAlchemy, and whether an SQLite file would take a write now.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.domain.alerts import firing_severity
from monitor.errors import StorageError, StorageUnavailable
from monitor.storage.decode import firing_since, from_millis

if TYPE_CHECKING:
    from monitor.storage.leases import LeaseInfo
    from monitor.storage.repository import SqlStore

# Runs one statement (named `:parameters`, the style both sqlite3 and SQLAlchemy take) and returns
# its rows; `action` names it in a StorageError ("listing accounts: no such table: account").
Fetch = Callable[[str, str, Mapping[str, Any]], list[tuple[Any, ...]]]

# The position_leg.side codes of monitor.storage.models.SIDE_CODES, by code (a test keeps them
# equal: the models module imports SQLAlchemy).
SIDE_NAMES = ("long", "short")

# How long a read waits for the daemon's write lock, as the store's connections do.
BUSY_TIMEOUT_SECONDS = 5.0

ACCOUNTS_SQL = "SELECT id, name, asset, poll_interval, model FROM account ORDER BY name"
FIRING_SQL = (
    "SELECT account.name, alert_state.rule_key, alert_state.state, alert_state.updated_at "
    "FROM alert_state JOIN account ON account.id = alert_state.account_id "
    "ORDER BY account.name, alert_state.rule_key"
)
LATEST_SNAPSHOT_SQL = (
    "SELECT id, taken_at, equity, margin_ratio, exchange_margin_ratio, account_liquidation_move, "
    "move_sigmas_hourly, move_sigmas_daily FROM account_snapshot "
    "WHERE account_id = :account_id ORDER BY taken_at DESC, id DESC LIMIT 1"
)
POSITIONS_SQL = (
    "SELECT symbol.name, position_leg.side, position_snapshot.liquidation_price, "
    "position_snapshot.exchange_liquidation_price, "
    "CASE WHEN position_snapshot.mark_price > 0 THEN abs(position_snapshot.mark_price - "
    "position_snapshot.liquidation_price) / position_snapshot.mark_price END, "
    "position_snapshot.stop_status "
    "FROM position_snapshot JOIN position_leg ON position_leg.id = position_snapshot.leg_id "
    "JOIN symbol ON symbol.id = position_leg.symbol_id "
    "WHERE position_snapshot.snapshot_id = :snapshot_id ORDER BY position_snapshot.ordinal"
)
SINK_STATES_SQL = "SELECT sink, state, since, last_error, next_attempt_at FROM sink_state"
HELD_SQL = "SELECT sink, count(*) FROM outbox WHERE delivered_at IS NULL AND NOT dead GROUP BY sink"


@dataclass(frozen=True, slots=True)
class StatusAccount:
    """A stored account: what it is counted in, how its margin is pooled, how often it polls."""

    name: str
    asset: str
    model: str | None
    poll_interval: float | None


@dataclass(frozen=True, slots=True)
class StatusPosition:
    """A position of the latest snapshot, as far as `status` shows it."""

    symbol: str
    side: str
    liquidation_price: float | None
    exchange_liquidation_price: float | None
    distance_to_liquidation: float | None
    stop_status: str | None


@dataclass(frozen=True, slots=True)
class LatestSnapshot:
    """An account's newest snapshot, as far as `status` shows it."""

    taken_at: datetime
    equity: float
    margin_ratio: float | None
    exchange_margin_ratio: float | None
    account_liquidation_move: float | None
    move_sigmas_hourly: float | None
    move_sigmas_daily: float | None
    positions: tuple[StatusPosition, ...]


@dataclass(frozen=True, slots=True)
class Firing:
    """A rule firing now, as its stored state says, and since when (its episode's start)."""

    account: str
    rule_key: str
    severity: str
    since: datetime


@dataclass(frozen=True, slots=True)
class TroubledSink:
    """A sink whose last delivery failed, or that is disabled."""

    sink: str
    state: str
    since: datetime | None
    last_error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class StatusData:
    """Everything `status` reads from the database, in one go."""

    accounts: list[StatusAccount]
    latest: dict[str, LatestSnapshot | None]
    firing: list[Firing]
    # Who polls which account (several daemons on PostgreSQL; none on SQLite).
    leases: list[LeaseInfo]
    # Sinks not ok by name, and how many alerts wait for each sink (None: a database from
    # before sink states were stored, where nothing is known).
    troubled_sinks: dict[str, TroubledSink] | None
    held: dict[str, int]


def plain_sqlite_path(url: str) -> Path | None:
    """The file of a plain `sqlite:///PATH` URL, as SQLAlchemy reads it; None for any other URL
    (PostgreSQL, in-memory, or one with options or escapes), which needs SQLAlchemy to parse."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :]
    if not path or path == ":memory:" or any(c in path for c in "?%"):
        return None
    return Path(path)


def read(fetch: Fetch) -> StatusData:
    """What `status` shows, read with `fetch` (see read_file and read_store)."""
    accounts = fetch("listing accounts", ACCOUNTS_SQL, {})
    firing = []
    for name, rule_key, text, updated_at in fetch("reading alert state", FIRING_SQL, {}):
        state = _json(text)
        severity = firing_severity(state) if isinstance(state, dict) else None
        if severity is not None:
            since = firing_since(state, _moment(updated_at))
            firing.append(Firing(name, rule_key, severity.value, since))
    latest = {name: _latest(fetch, name, account_id) for account_id, name, _, _, _ in accounts}
    try:
        states = fetch("reading the sink states", SINK_STATES_SQL, {})
        held = fetch("reading the outbox per sink", HELD_SQL, {})
    except StorageError:
        troubled = None  # a database from before sink states were stored: nothing known
        held = []
    else:
        troubled = {
            sink: TroubledSink(sink, state, _moment_or_none(since), error, _moment_or_none(at))
            for sink, state, since, error, at in states
            if state != "ok"
        }
    return StatusData(
        accounts=[
            StatusAccount(name, asset, model, interval)
            for _, name, asset, interval, model in accounts
        ],
        latest=latest,
        firing=firing,
        leases=[],
        troubled_sinks=troubled,
        held={str(sink): int(count) for sink, count in held},
    )


def read_file(path: Path) -> StatusData:
    """`read` on an SQLite file, in one read transaction on the standard library's driver."""
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"opening {path}: {exc}") from exc
    with contextlib.closing(conn):

        def fetch(action: str, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"{action}: {exc}") from exc

        fetch("starting to read", "BEGIN", {})
        try:
            return read(fetch)
        finally:
            conn.rollback()


async def read_store(store: SqlStore) -> StatusData:
    """`read` on the store's database (PostgreSQL), with the account leases of its daemons."""
    from dataclasses import replace

    from sqlalchemy import text

    from monitor.storage.engine import storage_errors
    from monitor.storage.leases import leases

    def run(conn: Any) -> StatusData:
        def fetch(action: str, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
            with storage_errors(action), conn.begin_nested():
                return [tuple(row) for row in conn.execute(text(sql), params)]

        return read(fetch)

    async with store.reading("reading the status") as conn:
        data = await conn.run_sync(run)
    return replace(data, leases=await leases(store.engine))


def _latest(fetch: Fetch, account: str, account_id: int) -> LatestSnapshot | None:
    action = f"reading the latest snapshot of {account!r}"
    found = fetch(action, LATEST_SNAPSHOT_SQL, {"account_id": account_id})
    if not found:
        return None
    snapshot_id, taken_at, equity, ratio, exchange_ratio, move, hourly, daily = found[0]
    positions = tuple(
        StatusPosition(symbol, SIDE_NAMES[side], liquidation, exchange, distance, stop)
        for symbol, side, liquidation, exchange, distance, stop in fetch(
            action, POSITIONS_SQL, {"snapshot_id": snapshot_id}
        )
    )
    return LatestSnapshot(
        from_millis(taken_at), equity, ratio, exchange_ratio, move, hourly, daily, positions
    )


def _json(value: Any) -> Any:
    # SQLite keeps JSON as text; PostgreSQL's driver hands JSONB over as text without a type.
    return json.loads(value) if isinstance(value, str | bytes) else value


def _moment(value: datetime | str) -> datetime:
    # A UTC time: SQLite keeps naive UTC text, PostgreSQL gives an aware datetime.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _moment_or_none(value: datetime | str | None) -> datetime | None:
    return None if value is None else _moment(value)


# Below this much free space next to an SQLite file, a poll cycle's write cannot be counted on.
LOW_SPACE_BYTES = 256 * 1024


def sqlite_write_trouble(path: Path) -> str | None:
    """Why the SQLite database at `path` would refuse a write now ("disk full: ...",
    "read-only: ...", "locked: ..."), None when nothing is found; writes nothing itself.

    `status` asks this while the daemon may be failing to store: the daemon's own state is in
    the database it cannot write (its STATUS= line and metrics say it too)."""
    if not path.exists():
        return None
    free = shutil.disk_usage(path.parent).free
    if free < LOW_SPACE_BYTES:
        return f"disk full: {free} bytes free on the file system of {path.parent}"
    if os.statvfs(path.parent).f_flag & os.ST_RDONLY or not os.access(path, os.W_OK):
        return f"read-only: {path} cannot be written"
    # The daemon's own writes hold the lock for milliseconds; a lock held across several tries
    # is someone else's (a backup, an open sqlite3 shell in a transaction).
    last = ""
    for _ in range(3):
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=0.3)) as conn:
                conn.isolation_level = None
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            last = str(exc)
            if "locked" not in last and "busy" not in last:
                return f"other: {last}"
            time.sleep(0.2)
        else:
            return None
    return f"locked: {last} (another process holds the write lock)"
