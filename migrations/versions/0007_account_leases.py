"""account leases and daemon heartbeats for several daemons on one PostgreSQL database

Revision ID: 0007_account_leases
Revises: 0006_position_stops
Create Date: 2026-12-05 07:30:00

Several daemons may share one PostgreSQL database: each account is polled by the daemon holding
its lease, and an outbox row is delivered by the daemon that claimed it. The tables exist on
SQLite too (one schema), where one daemon per file never uses them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.storage.sqltypes

revision: str = "0007_account_leases"
down_revision: str | None = "0006_position_stops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str) -> sa.Column[object]:
    return sa.Column(name, monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "monitor_daemon",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        _moment("started_at"),
        _moment("renewed_at"),
        _moment("expires_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_monitor_daemon")),
    )
    op.create_table(
        "account_lease",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("holder", sa.String(), nullable=False),
        _moment("acquired_at"),
        _moment("renewed_at"),
        _moment("expires_at"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_account_lease_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_lease")),
    )
    with op.batch_alter_table("account_lease", schema=None) as batch_op:
        batch_op.create_index("ix_account_lease_holder", ["holder"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
    op.drop_table("account_lease")
    op.drop_table("monitor_daemon")
