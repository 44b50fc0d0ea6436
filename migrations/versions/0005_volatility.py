"""the account move in sigmas of recent moves, per snapshot

Revision ID: 0005_volatility
Revises: 0004_sink_state
Create Date: 2026-12-05 07:30:00

With the venues' klines read, each snapshot also stores the account-wide liquidation move in
sigmas of the pool's 1 h and 1 d moves, so that `status` can show it. Null where the volatility
was unknown or not read (every snapshot before this revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_volatility"
down_revision: str | None = "0004_sink_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("account_snapshot", sa.Column("move_sigmas_hourly", sa.Float(), nullable=True))
    op.add_column("account_snapshot", sa.Column("move_sigmas_daily", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account_snapshot") as batch:
        batch.drop_column("move_sigmas_daily")
        batch.drop_column("move_sigmas_hourly")
