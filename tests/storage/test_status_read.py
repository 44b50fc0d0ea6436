"""`status` reads through plain SQL (monitor/storage/status_read.py): on SQLite with the standard
library's driver, on PostgreSQL through SQLAlchemy. Both must read what the store's own queries
read from the same database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.domain.codec import state_from_json
from monitor.domain.margin import assess
from monitor.domain.model import Snapshot
from monitor.errors import StorageError
from monitor.ports import SinkHealth
from monitor.storage import queries, status_read
from monitor.storage.engine import sqlite_path
from monitor.storage.models import SIDE_NAMES
from monitor.storage.repository import SqlStore
from monitor.storage.status_read import (
    Firing,
    LatestSnapshot,
    StatusAccount,
    StatusData,
    StatusPosition,
    TroubledSink,
)
from tests.storage.factories import notification, snapshot
from tests.support.vectors import VECTOR_DIR, load

STOPS = load(VECTOR_DIR / "stops" / "binance_usdm_cross_two_longs.json")["cases"]


async def _seed(store: SqlStore) -> None:
    now = datetime.now(UTC)
    for name in ("main", "idle", "Zeta", "stops"):
        await store.register_account(
            name, venue="binance-usdm", asset="USDT", poll_interval=30, now=now
        )
    stops = state_from_json(STOPS[1]["state"])
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot("main", now - timedelta(minutes=2)))
        await cycle.add_snapshot(snapshot("Zeta", now - timedelta(minutes=1), liquidation=None))
        await cycle.add_snapshot(Snapshot("stops", now, stops, assess(stops)))
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot("main", now - timedelta(minutes=1), positions=3))
        await cycle.save_alert_states(
            "main",
            {
                "margin_ratio": {"severity": "warning", "started_at": now.isoformat()},
                "account_move": {"severity": "critical"},  # no start: the row's time
                "resolved": {"severity": None},
            },
        )
    await store.save_sink_state(
        SinkHealth("phone", "failing", now, "502 Bad Gateway", now + timedelta(minutes=1)), now
    )
    await store.save_sink_state(SinkHealth("ha", "disabled", now, "401 Unauthorized"), now)
    await store.save_sink_state(SinkHealth("log"), now)
    await store.enqueue([notification(1), notification(2)], ["phone", "ha"])


async def _as_the_store_reads_it(store: SqlStore) -> StatusData:
    """StatusData built from the store's own queries (the read path `status` used before)."""
    infos = await queries.accounts(store)
    latest = {}
    for info in infos:
        stored = await queries.latest_snapshot(store, info.name)
        latest[info.name] = (
            None
            if stored is None
            else LatestSnapshot(
                stored.taken_at,
                stored.equity,
                stored.margin_ratio,
                stored.exchange_margin_ratio,
                stored.account_liquidation_move,
                stored.move_sigmas_hourly,
                stored.move_sigmas_daily,
                tuple(
                    StatusPosition(
                        p.symbol,
                        p.side,
                        p.liquidation_price,
                        p.exchange_liquidation_price,
                        p.distance_to_liquidation,
                        p.stop_status,
                    )
                    for p in stored.positions
                ),
            )
        )
    states = await store.sink_states()
    return StatusData(
        accounts=[StatusAccount(i.name, i.asset, i.model, i.poll_interval) for i in infos],
        latest=latest,
        firing=[
            Firing(f.account, f.rule_key, f.severity, f.since)
            for f in await queries.firing_alerts(store)
        ],
        leases=[],
        troubled_sinks={
            s.sink: TroubledSink(s.sink, s.state, s.since, s.last_error, s.next_attempt_at)
            for s in states.values()
            if not s.ok
        },
        held=await store.held_counts(),
    )


async def test_status_reads_what_the_store_queries_read(store: SqlStore, db_url: str) -> None:
    await _seed(store)
    expected = await _as_the_store_reads_it(store)
    assert len(expected.firing) == 2
    assert expected.troubled_sinks
    assert expected.held
    assert {p.stop_status for p in expected.latest["stops"].positions} == {  # type: ignore[union-attr]
        "none",
        "beyond_liquidation",
    }
    assert await status_read.read_store(store) == expected
    file = status_read.plain_sqlite_path(db_url)
    if file is not None:
        assert status_read.read_file(file) == expected


async def test_a_database_without_sink_states_says_nothing_of_sinks(
    store: SqlStore, db_url: str
) -> None:
    await _seed(store)
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE sink_state"))
    read = await status_read.read_store(store)
    assert read.troubled_sinks is None
    assert read.held == {}
    assert [a.name for a in read.accounts] == [a.name for a in await queries.accounts(store)]
    file = status_read.plain_sqlite_path(db_url)
    if file is not None:
        assert status_read.read_file(file) == read


def test_side_codes_are_the_models() -> None:
    assert dict(enumerate(status_read.SIDE_NAMES)) == SIDE_NAMES


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///monitor.db",
        "sqlite:////var/lib/portfolio-monitor/monitor.db",
        "sqlite:///a#b.db",
        "sqlite:///a@b:c.db",
        "sqlite:///a%20b.db",
        "sqlite:///a.db?mode=ro",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite+aiosqlite:///x.db",
        "postgresql://monitor@localhost/monitor",
    ],
)
def test_a_plain_sqlite_url_is_read_as_sqlalchemy_reads_it(url: str) -> None:
    plain = status_read.plain_sqlite_path(url)
    if plain is not None:
        assert plain == sqlite_path(url)
    elif url.startswith("sqlite:///") and url.endswith(".db"):
        assert "?" in url or "%" in url  # left to SQLAlchemy, which unescapes or drops these


def test_an_unreadable_file_is_a_storage_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(StorageError, match="listing accounts: file is not a database"):
        status_read.read_file(junk)
