"""Account leases on a real PostgreSQL: each account has one holder, daemons split them evenly,
an expired lease (a daemon killed) is taken over, a live one never is, and a cycle of a daemon
that lost its lease is not stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from monitor.domain.model import Snapshot
from monitor.errors import DatabaseInUse, LeaseLost
from monitor.storage.engine import create_engine
from monitor.storage.leases import LeaseBoard, LeaseTerms, fair_share, leases
from monitor.storage.migrate import prepare_database
from monitor.storage.models import Symbol
from monitor.storage.repository import SqlStore
from tests.storage.factories import notification
from tests.storage.factories import snapshot as make_snapshot
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

ACCOUNTS = [f"acct{i:02d}" for i in range(10)]
# A lease of 0.6 s renewed every 0.19 s: expiry is observable in a test's time.
TERMS = LeaseTerms(takeover=timedelta(seconds=1.5))
# For tests about anything but expiry: a slow machine never lets these lapse mid-test.
LONG = LeaseTerms(takeover=timedelta(minutes=2))


@pytest.fixture
async def pg_store(pg_cluster: PostgresCluster) -> AsyncIterator[SqlStore]:
    store = await prepare_database(pg_cluster.create_database("leases"), auto_migrate=True)
    now = datetime.now(UTC)
    for name in ACCOUNTS:
        await store.register_account(
            name, venue="binance-usdm", asset="USDT", poll_interval=1.0, now=now
        )
    yield store
    await store.close()


async def _board(store: SqlStore, name: str, pid: int, terms: LeaseTerms = TERMS) -> LeaseBoard:
    board = LeaseBoard(store.engine, name, terms)
    await board.join("host", pid)
    return board


def test_fair_share_covers_every_account() -> None:
    assert fair_share(10, 3) == 4
    assert fair_share(10, 1) == 10
    assert fair_share(9, 3) == 3
    assert fair_share(0, 2) == 0


async def test_three_daemons_split_the_accounts_without_overlap(pg_store: SqlStore) -> None:
    boards = [await _board(pg_store, f"d{i}", i, LONG) for i in range(3)]
    # Rounds run concurrently, as three processes would; a few rounds settle the shares.
    for _ in range(3):
        rounds = await asyncio.gather(*(b.round(ACCOUNTS) for b in boards))
        for board, done in zip(boards, rounds, strict=True):
            await board.release(done.excess)
    rounds = await asyncio.gather(*(b.round(ACCOUNTS) for b in boards))
    held = [r.held for r in rounds]
    assert set().union(*held) == set(ACCOUNTS)
    assert sum(len(h) for h in held) == len(ACCOUNTS)  # no account held twice
    # Nobody holds more than the even split rounded up (10 over 3: 4, 4 and 2 is allowed).
    assert all(1 <= len(h) <= fair_share(10, 3) for h in held), [len(h) for h in held]
    stored = {lease.account: lease.holder for lease in await leases(pg_store.engine)}
    for board, mine in zip(boards, held, strict=True):
        assert {a for a, holder in stored.items() if holder == board.name} == mine


async def test_a_live_lease_is_never_taken_and_an_expired_one_is(pg_store: SqlStore) -> None:
    first = await _board(pg_store, "first", 1)
    assert (await first.round(ACCOUNTS)).held == frozenset(ACCOUNTS)
    second = await _board(pg_store, "second", 2)
    # Two live daemons: the second gets nothing the first keeps renewing, the first sheds.
    for _ in range(3):
        await asyncio.sleep(TERMS.renew_every.total_seconds())
        kept = await first.round(ACCOUNTS)
        took = await second.round(ACCOUNTS)
        assert not (kept.held & took.held)
        await first.release(kept.excess)
    assert len(kept.held) == 10 - len(took.held) or kept.excess
    # The first stops renewing (killed): within the lease time the second holds everything.
    started = asyncio.get_running_loop().time()
    while len((await second.round(ACCOUNTS)).held) < len(ACCOUNTS):
        assert asyncio.get_running_loop().time() - started < TERMS.takeover.total_seconds()
        await asyncio.sleep(TERMS.renew_every.total_seconds())
    holders = {lease.holder for lease in await leases(pg_store.engine)}
    assert holders == {"second"}


async def test_a_clean_leave_frees_the_accounts_at_once(pg_store: SqlStore) -> None:
    first = await _board(pg_store, "first", 1, LONG)
    await first.round(ACCOUNTS)
    await first.leave()
    await first.depart()
    second = await _board(pg_store, "second", 2, LONG)
    assert (await second.round(ACCOUNTS)).held == frozenset(ACCOUNTS)


async def test_a_second_live_daemon_with_the_same_name_is_refused(pg_store: SqlStore) -> None:
    first = await _board(pg_store, "same", 1)

    async def keep_renewing() -> None:
        while True:
            await first.round(ACCOUNTS)
            await asyncio.sleep(TERMS.renew_every.total_seconds() / 2)

    renewing = asyncio.create_task(keep_renewing())
    try:
        with pytest.raises(DatabaseInUse, match="pid 1 on host") as refused:
            await LeaseBoard(pg_store.engine, "same", TERMS).join("host", 2)
        assert "daemon_name" in str(refused.value)
    finally:
        renewing.cancel()
    # Killed (no more renewals): a new process with that name waits its heartbeat out and joins.
    await LeaseBoard(pg_store.engine, "same", TERMS).join("host", 3)


async def test_a_cycle_of_an_account_leased_to_another_daemon_is_not_stored(
    pg_store: SqlStore,
) -> None:
    owner = await _board(pg_store, "owner", 1, LONG)
    assert "acct00" in (await owner.round(ACCOUNTS)).held
    # A daemon that was paused past its lease believes it still polls acct00.
    pg_store.lease_holder = "paused"
    with pytest.raises(LeaseLost, match=r"acct00.*owner"):
        async with pg_store.cycle() as cycle:
            await cycle.add_snapshot(make_snapshot("acct00"))
    assert await pg_store.last_snapshot_at("acct00") is None
    pg_store.lease_holder = "owner"
    async with pg_store.cycle() as cycle:
        await cycle.add_snapshot(make_snapshot("acct00"))
    assert await pg_store.last_snapshot_at("acct00") is not None


async def test_outbox_rows_are_claimed_by_one_daemon_until_it_dies(
    pg_store: SqlStore, pg_cluster: PostgresCluster
) -> None:
    other = SqlStore(create_engine(pg_store.engine.url.render_as_string(hide_password=False)))
    try:
        await _board(pg_store, "first", 1)
        await _board(other, "second", 2)
        pg_store.lease_holder, other.lease_holder = "first", "second"
        base = datetime.now(UTC) - timedelta(minutes=1)
        await pg_store.enqueue(
            [notification(n, base + timedelta(seconds=n)) for n in range(1, 31)], ["hook"]
        )
        now = datetime.now(UTC)
        # Both ask at once, as two daemons' senders would: each row goes to exactly one.
        mine, theirs = await asyncio.gather(pg_store.due(now, 20), other.due(now, 20))
        ids_mine = {entry.id for entry in mine}
        ids_theirs = {entry.id for entry in theirs}
        assert not ids_mine & ids_theirs
        assert len(ids_mine | ids_theirs) == 30
        # Oldest first within a claim (the sender keeps a sink's order by it).
        assert [e.notification.created_at for e in mine] == sorted(
            e.notification.created_at for e in mine
        )
        # Asked again, a daemon gets its own claims back and never the other's.
        assert {e.id for e in await other.due(now, 50)} == ids_theirs
        # The first stops renewing (killed). Just after its heartbeat expired it may still be
        # sending (a lapse on a loaded machine): its rows stay its own for one more lease length.
        other.claim_grace = TERMS.ttl
        await asyncio.sleep(TERMS.ttl.total_seconds() + 0.1)
        assert {e.id for e in await other.due(now, 50)} == ids_theirs
        await asyncio.sleep(TERMS.ttl.total_seconds())
        assert {e.id for e in await other.due(now, 50)} == ids_mine | ids_theirs
        # Had the first only stalled, its sender checks before each send and leaves them.
        assert not await pg_store.still_claimed(min(ids_mine))
        assert await other.still_claimed(min(ids_mine))
    finally:
        await other.close()


async def test_a_leaving_daemon_keeps_its_outbox_claims_until_its_sender_stopped(
    pg_store: SqlStore,
) -> None:
    other = SqlStore(create_engine(pg_store.engine.url.render_as_string(hide_password=False)))
    try:
        leaving = await _board(pg_store, "leaving", 1, LONG)
        await _board(other, "staying", 2, LONG)
        pg_store.lease_holder, other.lease_holder = "leaving", "staying"
        other.claim_grace = LONG.ttl
        base = datetime.now(UTC) - timedelta(minutes=1)
        await pg_store.enqueue(
            [notification(n, base + timedelta(seconds=n)) for n in range(1, 6)], ["hook"]
        )
        now = datetime.now(UTC)
        claimed = {entry.id for entry in await pg_store.due(now, 50)}
        assert len(claimed) == 5
        # Polls stopped, the accounts are handed back, the outbox is still being flushed: the
        # rows being sent are not the other daemon's to send as well.
        await leaving.leave()
        assert await other.due(now, 50) == []
        # The sender stopped: what it did not deliver goes to the other daemon at once.
        await pg_store.mark_delivered(min(claimed), now)
        await leaving.depart()
        assert {entry.id for entry in await other.due(now, 50)} == claimed - {min(claimed)}
    finally:
        await other.close()


async def test_daemons_storing_a_new_symbol_at_once_both_store_their_cycle(
    pg_store: SqlStore,
) -> None:
    other = SqlStore(create_engine(pg_store.engine.url.render_as_string(hide_password=False)))
    try:
        # The first daemon's transaction has written the symbol but not committed it yet.
        first = make_snapshot("acct00")
        symbol = first.state.positions[0].symbol
        async with pg_store.engine.connect() as conn:
            await conn.execute(insert(Symbol).values(name=symbol))
            second = asyncio.create_task(_store_cycle(other, make_snapshot("acct01")))
            await asyncio.sleep(0.3)
            assert not second.done()  # waits for the first's row, no unique violation
            await conn.commit()
        await second
        assert await other.last_snapshot_at("acct01") is not None
    finally:
        await other.close()


async def _store_cycle(store: SqlStore, snapshot: Snapshot) -> None:
    async with store.cycle() as cycle:
        await cycle.add_snapshot(snapshot)
