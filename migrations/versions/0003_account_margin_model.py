"""the margin model of each account

Revision ID: 0003_account_margin_model
Revises: 0002_unbounded_names
Create Date: 2026-12-04 17:40:00

A pooled account (Binance Multi-Assets or Portfolio Margin, Bybit UTA cross) reports its figures
in USD, not in the configured settlement coin. The account row keeps the pool's currency and model
as the newest snapshot has them, so `status` and `history` label the figures correctly.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_account_margin_model"
down_revision: str | None = "0002_unbounded_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("account", sa.Column("model", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.drop_column("model")
