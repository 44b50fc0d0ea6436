"""Repository contract: the same behaviour on SQLite and PostgreSQL (see conftest `db_url`)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from monitor.domain.model import Tier
from monitor.errors import StorageError, StorageUnavailable
from monitor.ports import CycleWriter, OutboxStore, SnapshotStore
from monitor.storage import queries, retention
from monitor.storage.engine import BUSY_TIMEOUT_MS
from monitor.storage.migrate import prepare_database
from monitor.storage.models import (
    AccountSnapshot,
    AlertEvent,
    PositionLeg,
    PositionSnapshot,
    TierTable,
)
from monitor.storage.repository import SqlStore
from tests.storage.factories import T0, Event, notification, snapshot


async def count(store: SqlStore, model: type[Any]) -> int:
    async with store.reading("count") as conn:
        return int(await conn.scalar(select(func.count()).select_from(model)) or 0)


def test_store_satisfies_the_ports(store: SqlStore) -> None:
    snapshot_store: SnapshotStore = store
    outbox_store: OutboxStore = store
    assert snapshot_store is outbox_store


async def test_cycle_stores_snapshot_with_positions_and_reads_it_back(store: SqlStore) -> None:
    async with store.cycle() as cycle:
        writer: CycleWriter = cycle
        await writer.add_snapshot(snapshot(positions=3, mark=58_000.0))

    latest = await queries.latest_snapshot(store, "main")
    assert latest is not None
    assert latest.taken_at == T0
    assert latest.taken_at.tzinfo is not None
    assert latest.equity == 9_000.0
    assert latest.margin_ratio == 3.0
    assert latest.exchange_margin_ratio == pytest.approx(1 / 3)
    assert latest.reported_margin_ratio == 0.0333
    assert [p.symbol for p in latest.positions] == ["BTCUSDT", "ETHUSDT", "SYM2USDT"]
    btc = latest.positions[0]
    assert (btc.side, btc.margin_mode, btc.quantity, btc.leverage) == ("long", "cross", 0.5, 20.0)
    assert btc.liquidation_price == 41_000.0
    assert btc.exchange_liquidation_price == pytest.approx(41_041.0)
    assert btc.distance_to_liquidation == pytest.approx((58_000 - 41_000) / 58_000)
    assert latest.nearest_distance == pytest.approx((58_000 - 41_000) / 58_000)
    assert await store.last_snapshot_at("main") == T0


async def test_failed_cycle_leaves_nothing(store: SqlStore) -> None:
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot())

    async def failing_cycle() -> None:
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(seconds=10)))
            await cycle.save_alert_states("main", {"margin": {"status": "firing"}})
            await cycle.enqueue([notification()], ["console"])
            raise RuntimeError("exchange went away")

    with pytest.raises(RuntimeError, match="exchange went away"):
        await failing_cycle()
    assert await count(store, AccountSnapshot) == 1
    assert await count(store, PositionSnapshot) == 2
    assert await store.load_alert_states("main") == {}
    assert await store.depth() == 0
    # The rolled-back cycle's ids must not be reused from a cache.
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(seconds=20), positions=4))
    latest = await queries.latest_snapshot(store, "main")
    assert latest is not None
    assert len(latest.positions) == 4


async def test_cancelled_cycle_is_rolled_back(store: SqlStore) -> None:
    started = asyncio.Event()

    async def slow_cycle() -> None:
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshot())
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow_cycle())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await count(store, AccountSnapshot) == 0
    assert await store.last_snapshot_at("main") is None


async def test_legs_are_shared_until_terms_change(store: SqlStore) -> None:
    for i in range(5):
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(seconds=10 * i)))
    assert await count(store, PositionLeg) == 2
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(seconds=60), quantity=0.7))
    assert await count(store, PositionLeg) == 4
    latest = await queries.latest_snapshot(store, "main")
    assert latest is not None
    assert latest.positions[0].quantity == 0.7


async def test_returning_to_earlier_terms_reuses_their_legs(store: SqlStore) -> None:
    for i, quantity in enumerate([0.5, 0.5, 0.7, 0.7, 0.5, 0.5]):
        async with store.cycle() as cycle:
            await cycle.add_snapshot(
                snapshot(taken_at=T0 + timedelta(seconds=10 * i), quantity=quantity)
            )
    assert await count(store, PositionLeg) == 4
    latest = await queries.latest_snapshot(store, "main")
    assert latest is not None
    assert [p.quantity for p in latest.positions] == [0.5, 0.5]


async def test_cycle_after_prune_stores_new_legs_for_unchanged_positions(store: SqlStore) -> None:
    for i in range(3):
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(seconds=10 * i)))
    await store.prune(T0 + timedelta(days=800))
    assert await count(store, PositionLeg) == 0
    later = T0 + timedelta(days=800, seconds=10)
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot(taken_at=later))
    assert await count(store, PositionLeg) == 2
    latest = await queries.latest_snapshot(store, "main")
    assert latest is not None
    assert latest.taken_at == later
    assert [p.symbol for p in latest.positions] == ["BTCUSDT", "ETHUSDT"]


async def test_tier_table_versions_are_recorded_on_change(store: SqlStore) -> None:
    changed = (Tier(0.0, 25_000.0, 0.005, 0.0), Tier(25_000.0, None, 0.01, 125.0))
    for i, tiers in enumerate([None, None, changed, changed]):
        async with store.cycle() as cycle:
            kwargs = {} if tiers is None else {"tiers": tiers}
            await cycle.add_snapshot(
                snapshot(taken_at=T0 + timedelta(minutes=i), positions=1, **kwargs)
            )
    async with store.reading("tiers") as conn:
        rows = (
            await conn.execute(select(TierTable.first_seen, TierTable.tiers).order_by(TierTable.id))
        ).all()
    assert [first_seen for first_seen, _ in rows] == [T0, T0 + timedelta(minutes=2)]
    assert rows[1][1][1] == {"floor": 25_000.0, "cap": None, "mmr": 0.01, "deduction": 125.0}


async def test_alert_states_upsert_and_load(store: SqlStore) -> None:
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot())
        await cycle.save_alert_states(
            "main", {"margin": {"status": "pending", "since": 1}, "stale": {"status": "ok"}}
        )
    async with store.cycle() as cycle:
        await cycle.save_alert_states("main", {"margin": {"status": "firing", "levels": [1, 2]}})
        await cycle.delete_alert_states("main", ["stale"])
    assert await store.load_alert_states("main") == {
        "margin": {"status": "firing", "levels": [1, 2]}
    }
    assert await store.load_alert_states("unknown") == {}


async def test_alert_state_needs_a_known_account(store: SqlStore) -> None:
    with pytest.raises(StorageError, match="'ghost'"):
        async with store.cycle() as cycle:
            await cycle.save_alert_states("ghost", {"margin": {}})


async def test_alert_events_are_stored_and_state_drives_firing_alerts(store: SqlStore) -> None:
    await store.register_account(
        "main", venue="binance-usdm", asset="USDT", poll_interval=10.0, now=T0
    )
    async with store.cycle() as cycle:
        await cycle.add_alert_events(
            "main",
            [
                Event("margin", "warning", "firing", T0),
                Event("stale", "critical", "resolved", T0 + timedelta(minutes=1)),
            ],
        )
        await cycle.save_alert_states(
            "main",
            {
                "margin": {"severity": "warning", "started_at": T0.isoformat()},
                "stale": {"severity": None, "started_at": None},
            },
        )
    # A later poll rewrites the state row; the alert has still been firing since T0.
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(hours=2)))
        await cycle.save_alert_states(
            "main", {"margin": {"severity": "warning", "started_at": T0.isoformat()}}
        )
    assert await count(store, AlertEvent) == 2
    firing = await queries.firing_alerts(store)
    assert [(a.account, a.rule_key, a.severity, a.since) for a in firing] == [
        ("main", "margin", "warning", T0)
    ]
    infos = await queries.accounts(store)
    assert [(a.name, a.poll_interval) for a in infos] == [("main", 10.0)]


async def test_outbox_lifecycle(store: SqlStore) -> None:
    first, second = notification(1), notification(2, created_at=T0 + timedelta(seconds=5))
    async with store.cycle() as cycle:
        await cycle.enqueue([first], ["console", "mqtt"])
    await store.enqueue([second], ["console"])
    # A notification replayed after a crash is queued once per sink.
    await store.enqueue([first], ["console"])
    assert await store.depth() == 3

    assert await store.due(T0 - timedelta(seconds=1), 10) == []
    due = await store.due(T0 + timedelta(seconds=10), 10)
    assert [(e.sink, e.notification.id) for e in due] == [
        ("console", first.id),
        ("mqtt", first.id),
        ("console", second.id),
    ]
    assert due[0].notification == first
    assert len(await store.due(T0 + timedelta(seconds=10), 2)) == 2

    await store.mark_delivered(due[0].id, T0 + timedelta(seconds=11))
    await store.mark_failed(due[1].id, T0 + timedelta(minutes=5), "broker down")
    await store.mark_dead(due[2].id, "chat not found")
    assert await store.depth() == 1
    assert await store.due(T0 + timedelta(minutes=1), 10) == []
    retry = await store.due(T0 + timedelta(minutes=5), 10)
    assert [(e.sink, e.attempts) for e in retry] == [("mqtt", 1)]


async def test_silences(store: SqlStore) -> None:
    await store.register_account(
        "main", venue="bybit-linear", asset="USDT", poll_interval=5, now=T0
    )
    added = await store.add_silence(
        "main", until=T0 + timedelta(hours=2), reason="maintenance", now=T0
    )
    assert [s.id for s in await store.active_silences(T0 + timedelta(hours=1))] == [added.id]
    assert await store.silenced_until("main", T0) == T0 + timedelta(hours=2)
    assert await store.silenced_until("main", T0 + timedelta(hours=2)) is None
    assert await store.active_silences(T0 + timedelta(hours=3)) == []
    assert await store.remove_silence(added.id)
    assert not await store.remove_silence(added.id)
    assert await store.active_silences(T0) == []


async def test_concurrent_cycles_of_several_accounts(store: SqlStore) -> None:
    async def poll(account: str) -> None:
        for i in range(5):
            async with store.cycle() as cycle:
                await cycle.add_snapshot(
                    snapshot(account, T0 + timedelta(seconds=10 * i), positions=3)
                )

    await asyncio.gather(*(poll(f"acct-{n}") for n in range(4)))
    assert await count(store, AccountSnapshot) == 20
    assert await count(store, PositionSnapshot) == 60


async def test_account_history_buckets_keep_the_worst(store: SqlStore) -> None:
    ratios = [3.0, 1.2, 2.5, 2.8, 2.9, 3.1]
    for i, ratio in enumerate(ratios):
        async with store.cycle() as cycle:
            liquidation = 50_000.0 if i == 1 else 41_000.0
            await cycle.add_snapshot(
                snapshot(
                    taken_at=T0 + timedelta(seconds=20 * i),
                    margin_ratio=ratio,
                    liquidation=liquidation,
                )
            )
    raw = await queries.account_history(store, "main", T0, T0 + timedelta(hours=1))
    assert [p.margin_ratio for p in raw] == ratios
    per_minute = await queries.account_history(store, "main", T0, T0 + timedelta(hours=1), 60)
    assert [(p.at, p.samples) for p in per_minute] == [
        (T0, 3),
        (T0 + timedelta(minutes=1), 3),
    ]
    assert per_minute[0].margin_ratio_min == 1.2
    assert per_minute[0].margin_ratio == 2.5
    assert per_minute[0].min_distance == pytest.approx((58_000 - 50_000) / 58_000)
    assert per_minute[1].margin_ratio_max == 3.1


async def test_prune_downsamples_without_losing_the_dip(store: SqlStore) -> None:
    # Two hours of 10-second snapshots; one dip to 1.1 for a single sample.
    start = T0
    for i in range(720):
        dip = i == 400
        async with store.cycle() as cycle:
            await cycle.add_snapshot(
                snapshot(
                    taken_at=start + timedelta(seconds=10 * i),
                    margin_ratio=1.1 if dip else 3.0,
                    mark=45_000.0 if dip else 58_000.0,
                    positions=2,
                )
            )
    before_hourly = await queries.account_history(
        store, "main", start, start + timedelta(hours=3), 3600
    )
    before_positions = await queries.position_history(
        store, "main", "BTCUSDT", start, start + timedelta(hours=3), 3600
    )
    report = await store.prune(start + timedelta(days=7, hours=3))
    assert report.snapshots_rolled_up == 720
    assert await count(store, AccountSnapshot) == 0
    assert await count(store, PositionSnapshot) == 0
    assert await count(store, PositionLeg) == 0

    hourly = await queries.account_history(store, "main", start, start + timedelta(hours=3), 3600)
    assert hourly == before_hourly
    assert [p.samples for p in hourly] == [360, 360]
    assert hourly[1].margin_ratio_min == 1.1
    assert hourly[1].margin_ratio == 3.0
    minute = await queries.account_history(store, "main", start, start + timedelta(hours=3), 60)
    assert len(minute) == 120
    assert min(p.margin_ratio_min or 9 for p in minute) == 1.1
    positions = await queries.position_history(
        store, "main", "BTCUSDT", start, start + timedelta(hours=3), 3600
    )
    assert positions == before_positions
    assert positions[1].min_distance == pytest.approx((45_000 - 41_000) / 45_000)
    # Raw history is gone; a second prune is a no-op; past the longest period all is deleted.
    assert await queries.account_history(store, "main", start, start + timedelta(hours=3)) == []
    again = await store.prune(start + timedelta(days=7, hours=3))
    assert again.snapshots_rolled_up == 0
    await store.prune(start + timedelta(days=800))
    assert await queries.account_history(store, "main", start, start + timedelta(hours=3), 60) == []


async def test_history_rejects_unknown_account_and_odd_buckets(store: SqlStore) -> None:
    from monitor.domain.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown account 'nope'"):
        await queries.account_history(store, "nope", T0, T0 + timedelta(hours=1))
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot())
    with pytest.raises(InvalidInput, match="--every"):
        await queries.account_history(store, "main", T0, T0 + timedelta(hours=1), 90)
    with pytest.raises(InvalidInput, match="DOGEUSDT"):
        await queries.position_history(store, "main", "DOGEUSDT", T0, T0 + timedelta(hours=1))


async def test_database_failures_are_storage_errors(store: SqlStore) -> None:
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot())
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE account_rollup"))
    with pytest.raises(StorageError, match="account_rollup"):
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(seconds=10)))
    # The failed cycle left nothing behind, and the store keeps working for other writes.
    assert await count(store, AccountSnapshot) == 1
    await store.enqueue([notification()], ["console"])
    assert await store.depth() == 1


async def test_closed_store_refuses_writes(db_url: str) -> None:
    closing_store = await prepare_database(db_url, auto_migrate=True)
    await closing_store.close()
    await closing_store.close()
    with pytest.raises(StorageError, match="closed"):
        async with closing_store.cycle() as cycle:
            await cycle.add_snapshot(snapshot())


async def test_position_history_by_minute_reaches_past_the_minute_period(store: SqlStore) -> None:
    # Three hours of 10-minute snapshots, pruned 40 days later: only the hour rows are left.
    for i in range(18):
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(minutes=10 * i)))
    await store.prune(T0 + timedelta(days=40))
    # --since in the middle of the first hour still shows that hour, as for the account.
    since, until = T0 + timedelta(minutes=25), T0 + timedelta(hours=3)
    for every in (60, 300, 3600):
        accounts = await queries.account_history(store, "main", since, until, every)
        positions = await queries.position_history(store, "main", "BTCUSDT", since, until, every)
        assert (
            [p.at for p in positions]
            == [p.at for p in accounts]
            == [T0 + timedelta(hours=h) for h in range(3)]
        )
        assert [p.samples for p in positions] == [6, 6, 6]


async def test_an_interrupted_prune_keeps_whole_hours_and_the_next_run_finishes(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three hours of 10-minute snapshots with a dip in the last one.
    for i in range(18):
        async with store.cycle() as cycle:
            await cycle.add_snapshot(
                snapshot(
                    taken_at=T0 + timedelta(minutes=10 * i), mark=45_000.0 if i == 16 else 58_000.0
                )
            )
    window = (T0, T0 + timedelta(hours=3), 3600)
    before = await queries.position_history(store, "main", "BTCUSDT", *window)
    rolled_up = retention.roll_up_batch
    calls = 0

    def fail_on_second_hour(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StorageUnavailable("disk I/O error")
        return rolled_up(*args)

    monkeypatch.setattr(retention, "roll_up_batch", fail_on_second_hour)
    with pytest.raises(StorageError):
        await store.prune(T0 + timedelta(days=8))
    # One transaction per hour: the first hour is rolled up and gone, the rest untouched.
    assert await count(store, AccountSnapshot) == 12
    assert await queries.position_history(store, "main", "BTCUSDT", *window) == before

    monkeypatch.setattr(retention, "roll_up_batch", rolled_up)
    report = await store.prune(T0 + timedelta(days=8))
    assert (report.snapshots_rolled_up, report.position_rows_deleted) == (12, 24)
    assert await count(store, AccountSnapshot) == 0
    after = await queries.position_history(store, "main", "BTCUSDT", *window)
    assert after == before
    assert after[2].min_distance == pytest.approx((45_000 - 41_000) / 45_000)


async def test_long_names_are_stored_alike_on_both_engines(store: SqlStore) -> None:
    # Nothing in the configuration limits account or webhook names; a notification id contains
    # the account name. PostgreSQL used to refuse what SQLite stored.
    account = "a" * 300
    sink = "w" * 100
    note = replace(notification(), id=f"{account}:margin_ratio:warning:firing:1:0", account=account)
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot(account))
        await cycle.save_alert_states(account, {"margin_ratio" * 30: {"firing": "warning"}})
        await cycle.enqueue([note], [sink])
    latest = await queries.latest_snapshot(store, account)
    assert latest is not None
    assert latest.account == account
    assert list(await store.load_alert_states(account)) == ["margin_ratio" * 30]
    [entry] = await store.due(T0 + timedelta(hours=1), 10)
    assert (entry.sink, entry.notification) == (sink, note)


async def test_prune_does_not_hold_the_write_lock_waiting_for_a_reader(tmp_path: Path) -> None:
    """The WAL checkpoint after a prune skips when a reader (`history` in another process) is
    in the middle of a read; waiting for it would block the daemon's writes for busy_timeout."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store = await prepare_database(url)
    try:
        for i in range(12):
            async with store.cycle() as cycle:
                await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(minutes=10 * i)))
        with closing(sqlite3.connect(tmp_path / "monitor.db", isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM account_snapshot").fetchone()
            began = time.monotonic()
            await store.prune(T0 + timedelta(days=8))
            assert time.monotonic() - began < BUSY_TIMEOUT_MS / 1000 / 2
            reader.execute("COMMIT")
        assert await count(store, AccountSnapshot) == 0
    finally:
        await store.close()


async def test_unused_legs_are_found_outside_the_write_lock_and_kept_if_used_again(
    store: SqlStore,
) -> None:
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot(taken_at=T0, quantity=0.5))
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(hours=2), quantity=0.7))
    await store.write(
        "roll up", lambda conn: retention.roll_up_batch(conn, T0 + timedelta(hours=1))
    )
    async with store.reading("legs") as conn:
        legs, newest = await conn.run_sync(retention.unused_legs)
    assert len(legs) == 2
    # Meanwhile the daemon stores a snapshot back at the first terms, reusing those legs.
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot(taken_at=T0 + timedelta(hours=3), quantity=0.5))
    await store.write("delete legs", lambda conn: retention.delete_legs(conn, legs, newest))
    assert await count(store, PositionLeg) == 4
    latest = await queries.latest_snapshot(store, "main")
    assert latest is not None
    assert [p.quantity for p in latest.positions] == [0.5, 0.5]
    # Once nothing uses them, they go.
    await store.prune(T0 + timedelta(days=7, hours=4))
    assert await count(store, PositionLeg) == 0
