"""Failover: several daemons on one PostgreSQL, one killed with -9; how long its accounts go
unpolled and whether any alert is delivered twice.

    .venv/bin/python bench/failover.py [--accounts 300] [--daemons 3] [--interval 10] [--takeover 10]

Everything real: a throwaway PostgreSQL cluster (tests/support/postgres.py), the simulator in
its own process, `portfolio-monitor run` subprocesses (one per daemon name), and a webhook
receiver in this process that records every alert with the daemon that sent it (each daemon
adds its name as a header). Every account fires a margin warning that repeats, so alerts flow
before, during and after the kill.

Figures:
- baseline: the steady-state gap between two snapshots of one account (median and worst over
  every account, over a window of a few poll intervals before the kill);
- takeover: for each account of the killed daemon, the time from the kill to its first new
  snapshot (median and worst), against the configured `[database] takeover` and the baseline;
- duplicates: alert ids delivered more than once, and how many of those by two daemons.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from aiohttp import web

from monitor.storage.migrate import migrate
from tests.support.postgres import PostgresCluster

BINARY = Path(sys.executable).with_name("portfolio-monitor")
SIMULATOR = """
import asyncio, sys
from monitor.simulator.server import SimulatorServer
async def main():
    async with SimulatorServer(sys.argv[1], port=int(sys.argv[2])):
        print("ready", flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


def scenario(accounts: int, daemons: int) -> dict[str, Any]:
    """`accounts` Bybit unified (UTA) cross accounts with one USDT linear long each. Bybit also
    caps every request from one address (600 per 5 s); in production each daemon has its own
    address (README), here all of them reach the simulator from 127.0.0.1, so the simulated cap
    is one address's per daemon (300 accounts at 10 s ask 180 requests a second of the 120 one
    address allows: polls then wait out 403s until their deadline)."""
    return {
        "name": "failover",
        "limits": {"bybit_ip_requests_per_5s": 600 * daemons},
        "seed": 7,
        "tick": "1s",
        "feeds": {"BTC": {"price": 60_000.0}},
        "instruments": [
            {
                "venue": "bybit-linear",
                "symbol": "BTCUSDT",
                "tick_size": "0.1",
                "qty_step": "0.001",
                "tiers": [{"cap": 2_000_000, "mmr": "0.5%", "max_leverage": 100}],
            }
        ],
        "accounts": {
            f"acct{n:03d}": {
                "exchange": "bybit",
                "margin_mode": "cross",
                "account_mode": "unified-1.0",
                "wallet": {"USDT": 10_000 + n},
                "positions": [
                    {
                        "symbol": "BTCUSDT",
                        "side": "long",
                        "quantity": 0.5,
                        "entry_price": 60_000.0,
                        "leverage": 10,
                    }
                ],
            }
            for n in range(accounts)
        },
    }


def keys_of(path: Path) -> dict[str, tuple[str, str]]:
    from monitor.simulator.scenario import load_scenario

    return {a.name: (a.api_key, a.api_secret) for a in load_scenario(path).accounts}


def write_config(
    path: Path, name: str, url: str, base_url: str, hook: str, args: argparse.Namespace
) -> None:
    lines = [
        f"state_dir = {json.dumps(str(path.parent))}",
        "[database]",
        f"url = {json.dumps(url)}",
        f'daemon_name = "{name}"',
        f'takeover = "{args.takeover:g}s"',
        # Gaps are measured between snapshots, one per poll: live marks would store fewer.
        "[streams]",
        "enabled = false",
        "[notify.webhooks.hook]",
        'kind = "json"',
        f"url = {json.dumps(hook)}",
        f'headers = {{ "X-Daemon" = "{name}" }}',
        "[notify.delivery]",
        'retry_initial = "1s"',
        "[alerts.margin_ratio]",
        'warning_below = "100000%"',
        'critical_below = "off"',
        'emergency_below = "off"',
        'for = "0s"',
        f'repeat = "{2 * args.interval:g}s"',
        "[alerts.liquidation_distance]",
        "enabled = false",
        "[alerts.account_move]",
        "enabled = false",
        "[alerts.stale]",
        f"after = {max(3, int(args.takeover / args.interval) + 3)}",
    ]
    for account, (key, secret) in sorted(keys_of(path.parent.parent / "scenario.json").items()):
        lines += [
            f"[accounts.{account}]",
            'venue = "bybit-linear"',
            f"api_key = {json.dumps(key)}",
            f"api_secret = {json.dumps(secret)}",
            f'poll_interval = "{args.interval:g}s"',
            f"base_url = {json.dumps(base_url)}",
        ]
    path.write_text("\n".join(lines) + "\n")


def spawn_simulator(scenario_path: Path, port: int) -> subprocess.Popen[str]:
    # Its output goes to a file: a pipe nobody reads fills up and stalls the simulator.
    with (scenario_path.parent / "simulator.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-c", SIMULATOR, str(scenario_path), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


async def simulator_ready(scenario_path: Path, process: subprocess.Popen[str]) -> None:
    log = scenario_path.parent / "simulator.log"
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"simulator did not start:\n{log.read_text()}")
        await asyncio.sleep(0.2)


def spawn_daemon(folder: Path) -> subprocess.Popen[bytes]:
    with (folder / "daemon.log").open("wb") as log:
        return subprocess.Popen(
            [str(BINARY), "run", "--config", str(folder / "config.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


class Receiver:
    """Records (alert id, sending daemon) of every webhook call."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, float]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append((str(body["id"]), request.headers.get("X-Daemon", "?"), time.time()))
        return web.json_response({"ok": True})


async def snapshot_times(url: str) -> dict[str, list[float]]:
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


async def holders(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT a.name, l.holder FROM account_lease l JOIN account a ON a.id = l.account_id "
            "WHERE l.expires_at > now()"
        )
    finally:
        await conn.close()
    return {row["name"]: row["holder"] for row in rows}


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def run(args: argparse.Namespace) -> None:
    # SIGTERM ends the run like Ctrl-C: the finally below stops the daemons and the cluster.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    work = Path(tempfile.mkdtemp(prefix="portfolio-monitor-failover-"))
    scenario_path = work / "scenario.json"
    scenario_path.write_text(json.dumps(scenario(args.accounts, args.daemons)))
    accounts = sorted(keys_of(scenario_path))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    simulator = spawn_simulator(scenario_path, port)
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    cluster = PostgresCluster.start()
    try:
        await simulator_ready(scenario_path, simulator)
        url = cluster.create_database("failover")
        await migrate(url)
        names = [f"d{i}" for i in range(args.daemons)]
        for name in names:
            folder = work / name
            folder.mkdir()
            write_config(folder / "config.toml", name, url, f"http://127.0.0.1:{port}", hook, args)
            daemons[name] = spawn_daemon(folder)
        started = time.monotonic()
        # Settled: every account leased, each daemon at most its even share, each polled twice.
        share = -(-args.accounts // args.daemons)
        while True:
            held = await holders(url)
            counts = Counter(held.values())
            times = await snapshot_times(url)
            if (
                len(held) == args.accounts
                and len(counts) == args.daemons
                and max(counts.values()) <= share
                and all(len(times.get(a, [])) >= 2 for a in accounts)
            ):
                break
            if time.monotonic() - started > 300:
                raise SystemExit(f"not settled after 300 s: {counts}; logs in {work}")
            await asyncio.sleep(1.0)
        settle = time.monotonic() - started
        print(
            f"{args.daemons} daemons, {args.accounts} accounts polled every {args.interval:g} s, "
            f"takeover {args.takeover:g} s: settled in {settle:.1f} s, "
            f"split {dict(sorted(counts.items()))}"
        )
        window_start = time.time()
        await asyncio.sleep(3 * args.interval)
        times = await snapshot_times(url)
        steady = [g for a in accounts for g in gaps([t for t in times[a] if t >= window_start])]
        victim = names[0]
        orphans = sorted(a for a, h in (await holders(url)).items() if h == victim)
        killed_at = time.time()
        daemons[victim].send_signal(signal.SIGKILL)
        daemons[victim].wait()
        while True:
            times = await snapshot_times(url)
            if all(any(t > killed_at for t in times[a]) for a in orphans):
                break
            if time.time() - killed_at > 10 * args.takeover:
                raise SystemExit(f"accounts not taken over in {10 * args.takeover:g} s")
            await asyncio.sleep(0.5)
        takeover = [min(t for t in times[a] if t > killed_at) - killed_at for a in orphans]
        unpolled = [
            min(t for t in times[a] if t > killed_at) - max(t for t in times[a] if t <= killed_at)
            for a in orphans
        ]
        # Alerts keep flowing for two repeat periods after the takeover, then a clean stop.
        await asyncio.sleep(4 * args.interval)
        for name in names[1:]:
            daemons[name].send_signal(signal.SIGTERM)
        for name in names[1:]:
            # In a thread: the receiver in this event loop takes their last deliveries.
            await asyncio.to_thread(daemons[name].wait, 60)
        after = Counter(h for h in (await holders(url)).values())
        ids = Counter(alert_id for alert_id, _, _ in receiver.received)
        senders: dict[str, set[str]] = {}
        first: dict[str, tuple[str, float]] = {}
        for alert_id, daemon, at in receiver.received:
            senders.setdefault(alert_id, set()).add(daemon)
            first.setdefault(alert_id, (daemon, at))
        duplicates = [i for i, n in ids.items() if n > 1]
        by_two = [i for i in duplicates if len(senders[i]) > 1]
        # At least once: the killed daemon may have sent a row and died before marking it
        # delivered; the daemon that claims it after the heartbeat expired sends it again.
        in_flight = [i for i in by_two if first[i][0] == victim and killed_at - first[i][1] <= 1.0]
        for alert_id in by_two:
            sends = [(d, at - killed_at) for i, d, at in receiver.received if i == alert_id]
            print(
                f"  duplicate {alert_id}: "
                + ", then ".join(f"{d} at kill{offset:+.2f} s" for d, offset in sends)
            )
        base_median = statistics.median(steady)
        print(
            f"baseline: steady-state gap between snapshots: median {base_median:.2f} s, "
            f"worst {max(steady):.2f} s ({len(steady)} gaps)"
        )
        print(
            f"takeover of {len(orphans)} accounts of the killed daemon {victim}: kill -> next "
            f"poll median {statistics.median(takeover):.2f} s, worst {max(takeover):.2f} s "
            f"({max(takeover) / args.takeover:.2f} of the configured {args.takeover:g} s); "
            f"longest gap between snapshots {max(unpolled):.2f} s "
            f"({max(unpolled) / base_median:.1f}x the baseline median)"
        )
        print(
            f"alerts: {len(receiver.received)} deliveries of {len(ids)} ids; duplicates "
            f"{len(duplicates)}, of which by two daemons {len(by_two)} ({len(in_flight)} first "
            f"sent by {victim} in its last second: sent, not yet marked delivered when killed); "
            f"leases left after the clean stop: {sum(after.values())}"
        )
    finally:
        for process in daemons.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        simulator.terminate()
        simulator.wait()
        await runner.cleanup()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--takeover", type=float, default=10.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
