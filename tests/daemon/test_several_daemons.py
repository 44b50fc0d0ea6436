"""Three daemons on one PostgreSQL: every account is polled by exactly one of them, a kill -9
moves the dead daemon's accounts to the others within the takeover time with no longer gap in
their snapshots, and no alert reaches the receiver twice but the one the killed daemon had in
flight, resent once under the same id (each daemon signs its webhook calls with its name, so a
duplicate from two daemons would show)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from monitor.simulator.server import SimulatorServer
from monitor.storage.migrate import migrate
from tests.daemon.e2e_support import SCENARIO
from tests.support.daemon import BINARY, DaemonProcess
from tests.support.postgres import PostgresCluster, require_postgres
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ACCOUNTS = [f"a{i}" for i in range(6)]
DAEMONS = ["d0", "d1", "d2"]
TAKEOVER = 5.0  # seconds: leases of 2.5 s renewed every 0.83 s
POLL = 1.0


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = require_postgres()
    with cluster:
        yield cluster


@pytest.fixture
async def many() -> AsyncIterator[SimulatorServer]:
    """The e2e scenario with six copies of its quiet "spare" account."""
    scenario = copy.deepcopy(SCENARIO)
    spare = scenario["accounts"]["spare"]
    scenario["accounts"] = {name: copy.deepcopy(spare) for name in ACCOUNTS}
    async with SimulatorServer(scenario, port=0) as server:
        yield server


def _config(path: Path, name: str, url: str, sim: SimulatorServer, hook: str) -> Path:
    lines = [
        f"state_dir = {json.dumps(str(path.parent / 'state'))}",
        "[database]",
        f"url = {json.dumps(url)}",
        f'daemon_name = "{name}"',
        f'takeover = "{TAKEOVER:g}s"',
        # The poll path: a snapshot every poll, which the test counts (live marks store fewer).
        "[streams]",
        "enabled = false",
        "[notify.webhooks.hook]",
        'kind = "json"',
        f"url = {json.dumps(hook)}",
        f'headers = {{ "X-Daemon" = "{name}" }}',
        # Every account fires a margin warning at once and repeats it every 2 s: a steady flow
        # of alerts before, during and after the takeover.
        "[alerts.margin_ratio]",
        'warning_below = "100000%"',
        'critical_below = "off"',
        'emergency_below = "off"',
        'for = "0s"',
        'repeat = "2s"',
        "[alerts.liquidation_distance]",
        "enabled = false",
        "[alerts.account_move]",
        "enabled = false",
        # The takeover gap (up to 5 s) is not what this test is about.
        "[alerts.stale]",
        "after = 10",
    ]
    for account in ACCOUNTS:
        info = sim.accounts[account]
        lines += [
            f"[accounts.{account}]",
            'venue = "binance-usdm"',
            f"api_key = {json.dumps(info.api_key)}",
            f"api_secret = {json.dumps(info.api_secret)}",
            f'poll_interval = "{POLL:g}s"',
            f"base_url = {json.dumps(sim.base_url)}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _snapshots(url: str) -> dict[str, list[float]]:
    """Snapshot times (epoch seconds) per account, oldest first."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT a.name, s.taken_at FROM account_snapshot s "
            "JOIN account a ON a.id = s.account_id ORDER BY s.taken_at"
        )
    finally:
        await conn.close()
    found: dict[str, list[float]] = {}
    for row in rows:
        found.setdefault(row["name"], []).append(row["taken_at"] / 1000)
    return found


def _status(config: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(BINARY), "status", "--format", "json", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


async def _status_until(
    daemons: list[DaemonProcess],
    done: Callable[[list[dict[str, Any]]], bool],
    within: float,
    what: str,
) -> list[dict[str, Any]]:
    """`status --format json` (in a thread: the simulator shares this event loop) until `done`."""
    rows: list[dict[str, Any]] = []

    async def holds() -> bool:
        nonlocal rows
        rows = await asyncio.to_thread(_status, daemons[-1].config)
        return done(rows)

    def seen() -> str:
        return f"status: {rows}\n" + "\n".join(d.log()[-3000:] for d in daemons)

    await wait_until(holds, within, what, seen, every=0.3)
    return rows


def _holders(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    return {row["account"]: row["daemon"] for row in rows}


async def test_three_daemons_share_the_accounts_and_take_over_from_a_killed_one(
    tmp_path: Path, pg_cluster: PostgresCluster, many: SimulatorServer, hook: WebhookReceiver
) -> None:
    url = pg_cluster.create_database("several")
    await migrate(url)
    daemons = []
    for name in DAEMONS:
        workdir = tmp_path / name
        workdir.mkdir()
        config = _config(workdir / "config.toml", name, url, many, hook.url)
        daemons.append(DaemonProcess(config, workdir))
    try:
        await asyncio.gather(*(asyncio.to_thread(d.start) for d in daemons))

        # Settled: every account held by one daemon, two each (6 over 3).
        def split(rows: list[dict[str, Any]]) -> bool:
            counts = Counter(_holders(rows).values())
            return counts == Counter(dict.fromkeys(DAEMONS, 2))

        rows = await _status_until(daemons, split, 20, "six accounts split two by two")
        # A lease runs half the takeover time from its last renewal (the CLI's clock is the
        # database's here, give or take a little).
        assert all(row["lease_expires_in_seconds"] <= TAKEOVER / 2 + 0.5 for row in rows), rows
        holders = _holders(rows)

        async def polled_twice() -> bool:
            found = await _snapshots(url)
            return all(len(found.get(a, [])) >= 2 for a in ACCOUNTS)

        # The first poll loads the venue's markets, slow with three daemons starting at once.
        await wait_until(polled_twice, 20, "every account polled twice")

        # One poll per second per account, not two: each is polled by its holder alone.
        before = await _snapshots(url)
        settled_at = max(times[-1] for times in before.values())
        await asyncio.sleep(2.0)  # letting time pass is the point: the polls in 2 s are counted
        after = await _snapshots(url)
        for account in ACCOUNTS:
            polled = len(after.get(account, [])) - len(before.get(account, []))
            assert 1 <= polled <= 3, (account, polled)

        victim = daemons[0]
        orphans = sorted(a for a, holder in holders.items() if holder == "d0")
        killed_at = time.time()
        await asyncio.to_thread(victim.kill)

        def taken_over(rows: list[dict[str, Any]]) -> bool:
            return all(_holders(rows)[a] in ("d1", "d2") for a in orphans)

        await _status_until(daemons, taken_over, TAKEOVER + 5, "the accounts taken over")
        # A little more life after the takeover (running on is the point), then a clean stop.
        await asyncio.sleep(2.0)
        stopped = await asyncio.gather(*(asyncio.to_thread(d.terminate) for d in daemons[1:]))
        assert stopped == [0, 0], [d.log()[-3000:] for d in daemons[1:]]

        snapshots = await _snapshots(url)
        for account in orphans:
            resumed = min(t for t in snapshots[account] if t > killed_at)
            assert resumed - killed_at <= TAKEOVER, (account, resumed - killed_at)
        # From the settled split on (the start-up hands accounts around while first polls, which
        # load the venue's markets, are slow): never longer without data than the takeover.
        for account, times in snapshots.items():
            settled = [t for t in times if t >= settled_at]
            gaps = [later - earlier for earlier, later in itertools.pairwise(settled)]
            assert max(gaps) <= TAKEOVER + POLL, (account, max(gaps))

        # Every alert went out once: no id twice, whichever daemon sent it. The one exception
        # is the kill itself: delivery is at-least-once, and a kill -9 between the receiver's
        # answer and the outbox's "delivered" mark leaves that one row unmarked; a survivor
        # sends it again under the same id (receivers deduplicate by it). Each daemon sends a
        # sink's rows one at a time, so only the victim's last send can be repeated, once.
        ids = [str(p["id"]) for p in hook.payloads]
        assert ids, "no alert reached the receiver"
        senders: dict[str, list[str]] = {}
        for payload, headers in zip(hook.payloads, hook.headers, strict=True):
            senders.setdefault(str(payload["id"]), []).append(headers["X-Daemon"])
        sent_by_victim = [
            str(p["id"])
            for p, h in zip(hook.payloads, hook.headers, strict=True)
            if h["X-Daemon"] == "d0"
        ]
        in_flight = sent_by_victim[-1:]
        twice = {i: who for i, who in senders.items() if len(who) > 1}
        # The in-flight row: first from the victim, then once from a survivor.
        allowed = {i: who for i, who in twice.items() if i in in_flight and who[:1] == ["d0"]}
        allowed = {i: who for i, who in allowed.items() if who[1:] in (["d1"], ["d2"])}
        # On failure: who sent each duplicate, and what the daemons said about leases, storage
        # and shutdown (cycle lines left out).
        assert twice == allowed, (
            twice,
            in_flight,
            killed_at,
            [line for d in daemons for line in d.log().splitlines() if " cycle " not in line],
        )
        assert {s for names in senders.values() for s in names} >= {"d1", "d2"}
        # Alerts of the orphaned accounts after the takeover came from their new holders.
        late = [
            p
            for p, h in zip(hook.payloads, hook.headers, strict=True)
            if p.get("account") in orphans and h["X-Daemon"] != "d0"
        ]
        assert late, "no alert of a taken-over account after the kill"
    finally:
        for daemon in daemons:
            daemon.__exit__(None, None, None)
