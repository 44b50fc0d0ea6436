"""initial schema

Revision ID: 0001_initial
Revises: (none)
Create Date: 2026-11-21 09:06:06.238159
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import monitor.storage.sqltypes

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "account",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("venue", sa.String(length=32), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("poll_interval", sa.Float(), nullable=True),
        sa.Column(
            "created_at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account")),
        sa.UniqueConstraint("name", name=op.f("uq_account_name")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("notification_id", sa.String(length=200), nullable=False),
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "delivered_at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dead", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("notification_id", "sink", name=op.f("uq_outbox_notification_id_sink")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending", ["delivered_at", "dead", "next_attempt_at"], unique=False
        )

    op.create_table(
        "symbol",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_symbol")),
        sa.UniqueConstraint("name", name=op.f("uq_symbol_name")),
    )
    op.create_table(
        "account_rollup",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("bucket_start", monitor.storage.sqltypes.EpochMillis(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("last_at", monitor.storage.sqltypes.EpochMillis(), nullable=False),
        sa.Column("equity", sa.Float(), nullable=False),
        sa.Column("wallet_balance", sa.Float(), nullable=False),
        sa.Column("maintenance_margin", sa.Float(), nullable=False),
        sa.Column("margin_ratio", sa.Float(), nullable=True),
        sa.Column("margin_ratio_min", sa.Float(), nullable=True),
        sa.Column("margin_ratio_max", sa.Float(), nullable=True),
        sa.Column("exchange_margin_ratio", sa.Float(), nullable=True),
        sa.Column("exchange_margin_ratio_min", sa.Float(), nullable=True),
        sa.Column("exchange_margin_ratio_max", sa.Float(), nullable=True),
        sa.Column("account_liquidation_move", sa.Float(), nullable=True),
        sa.Column("min_distance", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_account_rollup_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "resolution", "bucket_start", name=op.f("pk_account_rollup")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "account_snapshot",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("taken_at", monitor.storage.sqltypes.EpochMillis(), nullable=False),
        sa.Column("equity", sa.Float(), nullable=False),
        sa.Column("wallet_balance", sa.Float(), nullable=False),
        sa.Column("maintenance_margin", sa.Float(), nullable=False),
        sa.Column("initial_margin", sa.Float(), nullable=True),
        sa.Column("margin_ratio", sa.Float(), nullable=True),
        sa.Column("exchange_margin_ratio", sa.Float(), nullable=True),
        sa.Column("account_liquidation_move", sa.Float(), nullable=True),
        sa.Column("nearest_distance", sa.Float(), nullable=True),
        sa.Column("reported_equity", sa.Float(), nullable=True),
        sa.Column("reported_maintenance_margin", sa.Float(), nullable=True),
        sa.Column("reported_margin_ratio", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_account_snapshot_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_snapshot")),
    )
    with op.batch_alter_table("account_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            "ix_account_snapshot_account_taken", ["account_id", "taken_at"], unique=False
        )

    op.create_table(
        "alert_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("rule_key", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "facts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_alert_event_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_event")),
    )
    with op.batch_alter_table("alert_event", schema=None) as batch_op:
        batch_op.create_index("ix_alert_event_account_at", ["account_id", "at"], unique=False)

    op.create_table(
        "alert_state",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("rule_key", sa.String(length=200), nullable=False),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "updated_at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_alert_state_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_state")),
        sa.UniqueConstraint(
            "account_id", "rule_key", name=op.f("uq_alert_state_account_id_rule_key")
        ),
    )
    op.create_table(
        "position_leg",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "symbol_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("side", sa.SmallInteger(), nullable=False),
        sa.Column("margin_mode", sa.SmallInteger(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("leverage", sa.Float(), nullable=True),
        sa.Column("first_seen", monitor.storage.sqltypes.EpochMillis(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_position_leg_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["symbol_id"], ["symbol.id"], name=op.f("fk_position_leg_symbol_id_symbol")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_leg")),
    )
    with op.batch_alter_table("position_leg", schema=None) as batch_op:
        batch_op.create_index(
            "ix_position_leg_account_symbol", ["account_id", "symbol_id"], unique=False
        )

    op.create_table(
        "position_rollup",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("bucket_start", monitor.storage.sqltypes.EpochMillis(), nullable=False),
        sa.Column(
            "symbol_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("side", sa.SmallInteger(), nullable=False),
        sa.Column("margin_mode", sa.SmallInteger(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("last_at", monitor.storage.sqltypes.EpochMillis(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("mark_price", sa.Float(), nullable=False),
        sa.Column("unrealized_pnl", sa.Float(), nullable=False),
        sa.Column("maintenance_margin", sa.Float(), nullable=False),
        sa.Column("liquidation_price", sa.Float(), nullable=True),
        sa.Column("exchange_liquidation_price", sa.Float(), nullable=True),
        sa.Column("min_distance", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_position_rollup_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["symbol_id"], ["symbol.id"], name=op.f("fk_position_rollup_symbol_id_symbol")
        ),
        sa.PrimaryKeyConstraint(
            "account_id",
            "resolution",
            "bucket_start",
            "symbol_id",
            "side",
            "margin_mode",
            name=op.f("pk_position_rollup"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "silence",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("until", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_silence_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silence")),
    )
    with op.batch_alter_table("silence", schema=None) as batch_op:
        batch_op.create_index("ix_silence_account_until", ["account_id", "until"], unique=False)

    op.create_table(
        "tier_table",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("venue", sa.String(length=32), nullable=False),
        sa.Column(
            "symbol_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "tiers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "first_seen", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["symbol_id"], ["symbol.id"], name=op.f("fk_tier_table_symbol_id_symbol")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_table")),
    )
    with op.batch_alter_table("tier_table", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tier_table_venue_symbol", ["venue", "symbol_id", "first_seen"], unique=False
        )

    op.create_table(
        "position_snapshot",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("ordinal", sa.SmallInteger(), nullable=False),
        sa.Column("leg_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mark_price", sa.Float(), nullable=False),
        sa.Column("unrealized_pnl", sa.Float(), nullable=False),
        sa.Column("maintenance_margin", sa.Float(), nullable=False),
        sa.Column("liquidation_price", sa.Float(), nullable=True),
        sa.Column("exchange_liquidation_price", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["account_snapshot.id"],
            name=op.f("fk_position_snapshot_snapshot_id_account_snapshot"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "ordinal", name=op.f("pk_position_snapshot")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:

    op.drop_table("position_snapshot")
    with op.batch_alter_table("tier_table", schema=None) as batch_op:
        batch_op.drop_index("ix_tier_table_venue_symbol")

    op.drop_table("tier_table")
    with op.batch_alter_table("silence", schema=None) as batch_op:
        batch_op.drop_index("ix_silence_account_until")

    op.drop_table("silence")
    op.drop_table("position_rollup")
    with op.batch_alter_table("position_leg", schema=None) as batch_op:
        batch_op.drop_index("ix_position_leg_account_symbol")

    op.drop_table("position_leg")
    op.drop_table("alert_state")
    with op.batch_alter_table("alert_event", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_event_account_at")

    op.drop_table("alert_event")
    with op.batch_alter_table("account_snapshot", schema=None) as batch_op:
        batch_op.drop_index("ix_account_snapshot_account_taken")

    op.drop_table("account_snapshot")
    op.drop_table("account_rollup")
    op.drop_table("symbol")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")

    op.drop_table("outbox")
    op.drop_table("account")
