"""the health of each notification sink

Revision ID: 0004_sink_state
Revises: 0003_account_margin_model
Create Date: 2026-12-10 10:00:00

A sink disabled by a permanent error (a deleted webhook answering 410) keeps its alerts held and
is probed on the back-off. Its state is stored so that `portfolio-monitor status` can say that
alerts are not getting through, a restart re-enables it, and `alerts --retry SINK` can ask the
running daemon to try it at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.storage.sqltypes

revision: str = "0004_sink_state"
down_revision: str | None = "0003_account_margin_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sink_state",
        sa.Column("sink", sa.String(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "next_attempt_at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "updated_at", monitor.storage.sqltypes.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "retry_requested_at",
            monitor.storage.sqltypes.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("sink", name=op.f("pk_sink_state")),
    )


def downgrade() -> None:
    op.drop_table("sink_state")
