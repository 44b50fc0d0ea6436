"""`portfolio-monitor prune`: apply the retention policy now."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import typer

from monitor.cli.app import EXIT_FAILURE, app
from monitor.cli.options import (
    ConfigOption,
    DatabaseOption,
    existing_database,
    resolve_database_url,
)
from monitor.cli.output import err
from monitor.errors import ConfigError, StorageError

# The storage layer (SQLAlchemy, Alembic) is imported inside the command: `--help` and the
# other commands must not pay for it (see bench/startup.py).


@app.command()
def prune(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Apply retention now: downsample old snapshots, delete what is past the longest period."""
    import asyncio

    from monitor.storage.migrate import prepare_database
    from monitor.storage.retention import RetentionPolicy

    url, settings = resolve_database_url(config, database)
    existing_database(url)
    policy = RetentionPolicy()
    if settings is not None:
        db = settings.database
        policy = RetentionPolicy(db.retention_raw, db.retention_minute, db.retention_hour)

    async def run() -> dict[str, Any]:
        store = await prepare_database(url, auto_migrate=False, retention_policy=policy)
        try:
            return asdict(await store.prune(datetime.now(UTC)))
        finally:
            await store.close()

    try:
        report = asyncio.run(run())
    except (ConfigError, StorageError) as exc:
        err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    sys.stdout.write(json.dumps(report, default=str) + "\n")
