"""Schema migrations with Alembic, in process: `portfolio-monitor migrate` and the daemon's start."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.errors import ConfigError, StorageRefused
from monitor.storage.engine import backup_sqlite, create_engine, sqlite_path, storage_errors
from monitor.storage.repository import SqlStore
from monitor.storage.retention import RetentionPolicy

log = logging.getLogger(__name__)


def migrations_dir() -> Path:
    """The Alembic scripts: shipped in the wheel as monitor/_migrations, else the checkout's."""
    shipped = Path(str(resources.files("monitor"))) / "_migrations"
    if (shipped / "env.py").is_file():
        return shipped
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise StorageRefused("database migrations are missing from this installation")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config built in code (no alembic.ini, so the daemon's logging is left alone)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest schema revision this version of the program knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision id in the migration scripts."""
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's schema revision (None for an empty database)."""

    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    with storage_errors("reading the schema revision"):
        async with engine.connect() as conn:
            return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the schema to `revision` in one transaction."""
    config = alembic_config()

    def _upgrade(conn: Connection) -> None:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)

    with storage_errors("migrating the database"):
        async with engine.connect() as conn:
            await conn.execution_options(monitor_write=True)
            async with conn.begin():
                await conn.run_sync(_upgrade)


async def migrate(url: str) -> tuple[str | None, str]:
    """`portfolio-monitor migrate`: upgrade to head (SQLite: after a backup); (before, after)."""
    engine = create_engine(url)
    try:
        before = await current_revision(engine)
        head = head_revision()
        if before != head:
            _check_known(before)
            await _backup_before_upgrade(url, before, head)
            await upgrade(engine)
        return before, head
    finally:
        await engine.dispose()


async def prepare_database(
    url: str,
    auto_migrate: bool | None = None,
    *,
    retention_policy: RetentionPolicy | None = None,
) -> SqlStore:
    """Open the store for the daemon with an up-to-date schema.

    `auto_migrate` None means: yes for SQLite (one process owns the file; the old file is first
    copied with VACUUM INTO), no for PostgreSQL (shared database, DDL privileges). Without it, an
    out-of-date schema raises ConfigError telling the operator to run `portfolio-monitor migrate`.
    """
    engine = create_engine(url)
    try:
        is_sqlite = engine.dialect.name == "sqlite"
        migrate_now = is_sqlite if auto_migrate is None else auto_migrate
        current = await current_revision(engine)
        head = head_revision()
        if current != head:
            _check_known(current)
            if not migrate_now:
                raise ConfigError(
                    f"database schema is at revision {current or '(empty)'}, this version needs "
                    f"{head}: run `portfolio-monitor migrate` (or set [database] auto_migrate = true)"
                )
            await _backup_before_upgrade(url, current, head)
            log.info("migrating database schema from %s to %s", current or "(empty)", head)
            await upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SqlStore(engine, retention_policy=retention_policy)


def _check_known(current: str | None) -> None:
    if current is not None and current not in known_revisions():
        raise ConfigError(
            f"database schema revision {current} is newer than this version of portfolio-monitor "
            "knows; upgrade the program or use a backup"
        )


async def _backup_before_upgrade(url: str, current: str | None, head: str) -> Path | None:
    path = sqlite_path(url)
    if path is None or current is None or not path.is_file():
        return None
    destination = path.with_name(f"{path.name}.pre-{head}.bak")
    if destination.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        destination = path.with_name(f"{path.name}.pre-{head}-{stamp}.bak")
        # A second attempt within the same second (a restart loop) must not stop the start.
        number = 1
        while destination.exists():
            number += 1
            destination = path.with_name(f"{path.name}.pre-{head}-{stamp}-{number}.bak")
    await asyncio.to_thread(backup_sqlite, path, destination)
    log.info("backed up %s to %s before migrating", path, destination)
    return destination
