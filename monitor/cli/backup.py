"""`portfolio-monitor backup`: a consistent copy of the SQLite database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.app import EXIT_FAILURE, app
from monitor.cli.options import (
    ConfigOption,
    DatabaseOption,
    database_file,
    resolve_database_url,
    usage_error,
)
from monitor.cli.output import err
from monitor.errors import StorageError

# The storage layer (SQLAlchemy, Alembic) is imported inside the command: `--help` and the
# other commands must not pay for it (see bench/startup.py).


@app.command()
def backup(
    destination: Annotated[Path, typer.Argument(help="New file for the copy.", dir_okay=False)],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """A consistent copy of the SQLite database, safe while the daemon writes (VACUUM INTO)."""
    from monitor.storage.engine import backup_sqlite

    url, _ = resolve_database_url(config, database)
    source = database_file(url)
    if source is None:
        raise usage_error("backup copies SQLite databases; for PostgreSQL use pg_dump")
    if destination.exists():
        raise usage_error(f"{destination} already exists; choose a new file name")
    try:
        backup_sqlite(source, destination)
    except StorageError as exc:
        err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    sys.stdout.write(f"backed up {source} to {destination} ({destination.stat().st_size} bytes)\n")
