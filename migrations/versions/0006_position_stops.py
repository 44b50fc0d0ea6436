"""each position's protective stop

Revision ID: 0006_position_stops
Revises: 0005_volatility
Create Date: 2026-12-05 07:30:00

The stop that triggers first and its status (none, partial, beyond_liquidation, ok, unknown) are
stored with every position snapshot, so that `portfolio-monitor status` can say which positions
have no effective stop. Older snapshots keep null: their stops were never read.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_position_stops"
down_revision: str | None = "0005_volatility"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("position_snapshot") as batch:
        batch.add_column(sa.Column("stop_price", sa.Float(), nullable=True))
        batch.add_column(sa.Column("stop_status", sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("position_snapshot") as batch:
        batch.drop_column("stop_status")
        batch.drop_column("stop_price")
