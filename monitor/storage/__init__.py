"""Snapshot storage: SQLAlchemy models, engines (SQLite pragmas, PostgreSQL), repository, Alembic
migrations and retention. Implements `monitor.ports.SnapshotStore` and `monitor.ports.OutboxStore`."""
