"""names without a length limit

Revision ID: 0002_unbounded_names
Revises: 0001_initial
Create Date: 2026-11-21 11:55:00

Account names, symbols, rule keys, notification ids (which contain the account name) and sink
names are as long as the configuration makes them. PostgreSQL enforced the old VARCHAR lengths
(an account name of 150 characters made every cycle with a notification fail there) while SQLite
never did; both now store any length. SQLite ignores declared lengths, so only PostgreSQL changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_unbounded_names"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, old length)
_COLUMNS = (
    ("account", "name", 200),
    ("symbol", "name", 64),
    ("alert_state", "rule_key", 200),
    ("alert_event", "rule_key", 200),
    ("outbox", "notification_id", 200),
    ("outbox", "sink", 64),
)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, column, length in _COLUMNS:
        op.alter_column(
            table, column, type_=sa.String(), existing_type=sa.String(length), nullable=False
        )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, column, length in _COLUMNS:
        op.alter_column(
            table, column, type_=sa.String(length), existing_type=sa.String(), nullable=False
        )
