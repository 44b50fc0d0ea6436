"""Snapshot storage: SQLAlchemy models, engines (SQLite pragmas, PostgreSQL), the `SqlStore` façade
(`repository`) over one module per responsibility, Alembic migrations, retention and the CLI's read
queries. Implements `monitor.ports.SnapshotStore` and `monitor.ports.OutboxStore`."""
