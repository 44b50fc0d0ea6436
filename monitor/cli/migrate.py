"""`portfolio-monitor migrate`: upgrade the database schema."""

from __future__ import annotations

import sys

import typer

from monitor.cli.app import EXIT_FAILURE, app
from monitor.cli.options import (
    ConfigOption,
    DatabaseOption,
    database_file,
    resolve_database_url,
)
from monitor.cli.output import err
from monitor.errors import ConfigError, StorageError

# The storage layer (SQLAlchemy, Alembic) is imported inside the command: `--help` and the
# other commands must not pay for it (see bench/startup.py).


@app.command()
def migrate(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Upgrade the database schema to this version (SQLite: after a backup copy)."""
    import asyncio

    from monitor.storage.migrate import migrate as migrate_schema

    url, _ = resolve_database_url(config, database)
    database_file(url)
    try:
        before, after = asyncio.run(migrate_schema(url))
    except ConfigError as exc:
        err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    except StorageError as exc:
        err(f"database error: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    if before == after:
        sys.stdout.write(f"schema already at {after}\n")
    else:
        sys.stdout.write(f"schema upgraded from {before or '(empty)'} to {after}\n")
