"""The database schema. Time-series rows are compact: accounts, symbols and a position's slowly
changing terms are referenced by integer id; times are epoch milliseconds; a position row's distance
to liquidation is computed on read (|mark - liquidation| / mark) rather than stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.storage.sqltypes import EpochMillis, IdType, UTCDateTime

# Stable constraint names: Alembic batch operations on SQLite need them, and they match on PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")

# Side and margin mode as small integers: 0 and 1 take no bytes at all in an SQLite record.
SIDE_CODES = {"long": 0, "short": 1}
MARGIN_MODE_CODES = {"cross": 0, "isolated": 1}
SIDE_NAMES = {code: name for name, code in SIDE_CODES.items()}
MARGIN_MODE_NAMES = {code: name for name, code in MARGIN_MODE_CODES.items()}

# SQLite: the primary key is the table (no hidden rowid and no second index for the key).
_WITHOUT_ROWID = ({"sqlite_with_rowid": False},)

# Downsampled resolutions, in seconds.
MINUTE = 60
HOUR = 3600


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """A configured account (one margin pool); `poll_interval` lets `status` judge staleness alone."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    venue: Mapped[str] = mapped_column(String(32))
    # The pool's currency as the newest snapshot has it (USD for pooled accounts) and how the
    # venue pools its margin (a PoolModel value; None before the first snapshot of a version
    # that knew it).
    asset: Mapped[str] = mapped_column(String(16))
    poll_interval: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    model: Mapped[str | None] = mapped_column(String(16))


class Symbol(Base):
    """A contract symbol as the venue names it (BTCUSDT, BTCUSD_PERP)."""

    __tablename__ = "symbol"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)


class AccountSnapshot(Base):
    """One poll of one account: our figures next to the exchange's own (`reported_*`)."""

    __tablename__ = "account_snapshot"
    __table_args__ = (Index("ix_account_snapshot_account_taken", "account_id", "taken_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(EpochMillis)
    equity: Mapped[float] = mapped_column(Float)
    wallet_balance: Mapped[float] = mapped_column(Float)
    maintenance_margin: Mapped[float] = mapped_column(Float)
    initial_margin: Mapped[float | None] = mapped_column(Float)
    margin_ratio: Mapped[float | None] = mapped_column(Float)
    exchange_margin_ratio: Mapped[float | None] = mapped_column(Float)
    account_liquidation_move: Mapped[float | None] = mapped_column(Float)
    # The smallest distance to liquidation over all positions, so history reads one table.
    nearest_distance: Mapped[float | None] = mapped_column(Float)
    reported_equity: Mapped[float | None] = mapped_column(Float)
    reported_maintenance_margin: Mapped[float | None] = mapped_column(Float)
    reported_margin_ratio: Mapped[float | None] = mapped_column(Float)
    # The account move in sigmas of the pool's 1 h / 1 d move (null: volatility unknown or unread).
    move_sigmas_hourly: Mapped[float | None] = mapped_column(Float)
    move_sigmas_daily: Mapped[float | None] = mapped_column(Float)


class PositionLeg(Base):
    """A position's slowly changing terms; a new row only when size, entry or leverage change.

    Position rows reference it without a foreign key: enforcing one would need an index on every
    position row (the biggest table) just to let retention delete unused legs.
    """

    __tablename__ = "position_leg"
    __table_args__ = (Index("ix_position_leg_account_symbol", "account_id", "symbol_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    symbol_id: Mapped[int] = mapped_column(ForeignKey("symbol.id"))
    side: Mapped[int] = mapped_column(SmallInteger)
    margin_mode: Mapped[int] = mapped_column(SmallInteger)
    quantity: Mapped[float] = mapped_column(Float)
    entry_price: Mapped[float] = mapped_column(Float)
    leverage: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[datetime] = mapped_column(EpochMillis)


class PositionSnapshot(Base):
    """One position in one account snapshot: what moves every poll."""

    __tablename__ = "position_snapshot"
    __table_args__ = _WITHOUT_ROWID

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("account_snapshot.id", ondelete="CASCADE"), primary_key=True
    )
    ordinal: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    leg_id: Mapped[int] = mapped_column(IdType)
    mark_price: Mapped[float] = mapped_column(Float)
    unrealized_pnl: Mapped[float] = mapped_column(Float)
    maintenance_margin: Mapped[float] = mapped_column(Float)
    liquidation_price: Mapped[float | None] = mapped_column(Float)
    exchange_liquidation_price: Mapped[float | None] = mapped_column(Float)
    # The protective stop that triggers first and its status (monitor.domain.stops.StopStatus);
    # null in snapshots stored before stops were read.
    stop_price: Mapped[float | None] = mapped_column(Float)
    stop_status: Mapped[str | None] = mapped_column(String(24))


class AccountRollup(Base):
    """Downsampled account snapshots: per minute or per hour, keeping the worst of each bucket."""

    __tablename__ = "account_rollup"
    __table_args__ = _WITHOUT_ROWID

    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), primary_key=True
    )
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(EpochMillis, primary_key=True)
    samples: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(EpochMillis)
    equity: Mapped[float] = mapped_column(Float)
    wallet_balance: Mapped[float] = mapped_column(Float)
    maintenance_margin: Mapped[float] = mapped_column(Float)
    margin_ratio: Mapped[float | None] = mapped_column(Float)
    margin_ratio_min: Mapped[float | None] = mapped_column(Float)
    margin_ratio_max: Mapped[float | None] = mapped_column(Float)
    exchange_margin_ratio: Mapped[float | None] = mapped_column(Float)
    exchange_margin_ratio_min: Mapped[float | None] = mapped_column(Float)
    exchange_margin_ratio_max: Mapped[float | None] = mapped_column(Float)
    account_liquidation_move: Mapped[float | None] = mapped_column(Float)
    min_distance: Mapped[float | None] = mapped_column(Float)


class PositionRollup(Base):
    """Downsampled position rows per symbol, side and margin mode; keeps the smallest distance."""

    __tablename__ = "position_rollup"
    __table_args__ = _WITHOUT_ROWID

    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), primary_key=True
    )
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(EpochMillis, primary_key=True)
    symbol_id: Mapped[int] = mapped_column(ForeignKey("symbol.id"), primary_key=True)
    side: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    margin_mode: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    samples: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(EpochMillis)
    quantity: Mapped[float] = mapped_column(Float)
    entry_price: Mapped[float] = mapped_column(Float)
    mark_price: Mapped[float] = mapped_column(Float)
    unrealized_pnl: Mapped[float] = mapped_column(Float)
    maintenance_margin: Mapped[float] = mapped_column(Float)
    liquidation_price: Mapped[float | None] = mapped_column(Float)
    exchange_liquidation_price: Mapped[float | None] = mapped_column(Float)
    min_distance: Mapped[float | None] = mapped_column(Float)


class TierTable(Base):
    """A version of a symbol's bracket / risk-tier table, recorded when the exchange changes it."""

    __tablename__ = "tier_table"
    __table_args__ = (Index("ix_tier_table_venue_symbol", "venue", "symbol_id", "first_seen"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    venue: Mapped[str] = mapped_column(String(32))
    symbol_id: Mapped[int] = mapped_column(ForeignKey("symbol.id"))
    tiers: Mapped[Any] = mapped_column(JsonType)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertState(Base):
    """The alert state machine's persisted state of one rule for one account (opaque JSON)."""

    __tablename__ = "alert_state"
    __table_args__ = (UniqueConstraint("account_id", "rule_key"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    rule_key: Mapped[str] = mapped_column(String)
    state: Mapped[Any] = mapped_column(JsonType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertEvent(Base):
    """Something an alert rule did: fired, repeated, resolved, was silenced, escalated."""

    __tablename__ = "alert_event"
    __table_args__ = (Index("ix_alert_event_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    rule_key: Mapped[str] = mapped_column(String)
    severity: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    facts: Mapped[Any] = mapped_column(JsonType)


class Outbox(Base):
    """One notification to deliver to one sink; delivered at least once, with retry and back-off."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("notification_id", "sink"),
        Index("ix_outbox_pending", "delivered_at", "dead", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    notification_id: Mapped[str] = mapped_column(String)
    sink: Mapped[str] = mapped_column(String)
    payload: Mapped[Any] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    dead: Mapped[bool] = mapped_column(Boolean, default=False)
    # PostgreSQL with several daemons: the daemon that claimed the row (FOR UPDATE SKIP LOCKED)
    # and delivers it; another takes it only once that daemon's heartbeat has expired.
    claimed_by: Mapped[str | None] = mapped_column(String)


class SinkState(Base):
    """How one sink is doing, as the outbox sender last saw it: `ok`, `failing` (retryable
    errors) or `disabled` (a permanent error; its alerts are held and it is probed on the
    back-off). `portfolio-monitor status` reads it; `alerts --retry SINK` sets
    `retry_requested_at`, which the daemon clears once it acted on it."""

    __tablename__ = "sink_state"

    sink: Mapped[str] = mapped_column(String, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="ok")
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retry_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Silence(Base):
    """Notifications for an account are suppressed until `until` (alert state is still tracked)."""

    __tablename__ = "silence"
    __table_args__ = (Index("ix_silence_account_until", "account_id", "until"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")


class MonitorDaemon(Base):
    """A daemon sharing a PostgreSQL database: its identity and heartbeat. While `expires_at` is
    in the future its account leases and outbox claims stand; after it, others take them."""

    __tablename__ = "monitor_daemon"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    host: Mapped[str] = mapped_column(String)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AccountLease(Base):
    """Which daemon polls an account (PostgreSQL, several daemons): the holder renews
    `expires_at`; another daemon takes the lease with an UPDATE only once it has expired."""

    __tablename__ = "account_lease"
    __table_args__ = (Index("ix_account_lease_holder", "holder"),)

    account_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("account.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    holder: Mapped[str] = mapped_column(String)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


def insert_columns(model: type[Base]) -> tuple[str, ...]:
    """The columns an INSERT of a `model` row gives values for, in the table's order: every
    column but an autoincremented id."""
    table = model.__table__
    assert isinstance(table, Table)
    generated = table.autoincrement_column
    return tuple(column.name for column in table.c if column is not generated)
