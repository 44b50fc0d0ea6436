"""Storage fixtures: every contract test runs on an SQLite file and on a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from monitor.storage.migrate import prepare_database
from monitor.storage.repository import SqlStore
from tests.support.postgres import PostgresCluster, require_postgres


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the session (started only if a test asks for it)."""
    cluster = require_postgres()
    with cluster:
        yield cluster


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A plain URL of a fresh, empty database on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    """A migrated store on each engine."""
    opened = await prepare_database(db_url, auto_migrate=True)
    yield opened
    await opened.close()
