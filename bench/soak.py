"""Soak: the real daemon polling many simulated accounts; where the CPU goes and whether memory stays flat.

    .venv/bin/python bench/soak.py [--accounts 200] [--positions 20] [--rounds 3] [--interval 2]
        [--pacing venue|off] [--pacer ours|ccxt] [--session shared|own]

The simulator runs in its own process (so its CPU is not counted); the daemon runs in this one
under cProfile with its real adapters: ccxt over loopback, the margin engine, the alert rules, an
SQLite file, the console-less outbox. Every account is polled `--rounds` times. CPU is attributed
by the file each profiled function lives in: our package (`monitor/`), ccxt, and everything else
(asyncio, aiohttp, SQLAlchemy, json, ...), which is the baseline the share is measured against.
RSS, open file descriptors and the database size are sampled before the daemon starts (ccxt
already imported), after the first round (warm-up) and at the end; "per account" figures are the
growth over that baseline divided by the accounts.

`--pacing off` polls without any request pacing (one address cannot carry 1,000 Binance accounts
at 2 s: 10,000 weight a round against 2,400 a minute; with pacing that is a 250 s round);
`--pacer ccxt` swaps our pacers for ccxt's own throttler (a 1 ms wake-up loop while requests
wait) and `--session own` gives every ccxt instance its own HTTP session and TLS context as
before; each is the baseline for a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import json
import logging
import os
import pstats
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from monitor.daemon import Daemon, DaemonOptions
from monitor.logconfig import configure_logging
from monitor.service import CycleReport

SIMULATOR = """
import asyncio, sys
from monitor.simulator.server import SimulatorServer
async def main():
    async with SimulatorServer(sys.argv[1], port=int(sys.argv[2])):
        print("ready", flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


def scenario(accounts: int, positions: int, seed: int) -> dict[str, Any]:
    """`accounts` Binance USDⓈ-M cross accounts holding `positions` longs and shorts each."""
    feeds = {f"C{i}": {"price": 100.0 + 10 * i, "volatility": "0.05%"} for i in range(positions)}
    instruments = [
        {
            "venue": "binance-usdm",
            "symbol": f"C{i}USDT",
            "tiers": [
                {"cap": 50_000, "mmr": "0.5%", "max_leverage": 50},
                {"cap": 250_000, "mmr": "1%", "max_leverage": 20},
                {"mmr": "2.5%", "max_leverage": 10},
            ],
        }
        for i in range(positions)
    ]
    book = {
        f"acct{n:03d}": {
            "exchange": "binance",
            "wallet": {"USDT": 50_000 + 100 * n},
            "positions": [
                {
                    "symbol": f"C{i}USDT",
                    "side": "long" if (n + i) % 3 else "short",
                    "quantity": 10 + (n + i) % 7,
                    "entry_price": 100.0 + 10 * i,
                    "leverage": 10,
                }
                for i in range(positions)
            ],
        }
        for n in range(accounts)
    }
    return {
        "name": "soak",
        "seed": seed,
        "tick": "1s",
        "feeds": feeds,
        "instruments": instruments,
        "accounts": book,
        # One process polls every account from one IP: lift the venue's per-IP limits.
        "limits": {
            "binance_weight_per_minute": 10_000_000,
            "binance_sapi_weight_per_minute": 10_000_000,
        },
    }


def config(
    path: Path, state_dir: Path, base_url: str, keys: dict[str, tuple[str, str]], interval: float
) -> None:
    lines = [f"state_dir = {json.dumps(str(state_dir))}"]
    for name, (key, secret) in sorted(keys.items()):
        lines += [
            f"[accounts.{name}]",
            'venue = "binance-usdm"',
            f"api_key = {json.dumps(key)}",
            f"api_secret = {json.dumps(secret)}",
            f'poll_interval = "{interval}s"',
            f"base_url = {json.dumps(base_url)}",
        ]
    path.write_text("\n".join(lines) + "\n")


BUCKETS = ("ours (monitor/)", "ccxt", "aiohttp + asyncio", "sqlalchemy + sqlite", "other")


def bucket_of(filename: str) -> str:
    """Which part of the stack a profiled function belongs to, by its source file."""
    if "/ccxt/" in filename:
        return "ccxt"
    if "/monitor/" in filename and "/site-packages/" not in filename:
        return "ours (monitor/)"
    if any(
        part in filename for part in ("/aiohttp/", "/asyncio/", "/yarl/", "/multidict/", "/ssl.py")
    ):
        return "aiohttp + asyncio"
    if any(
        part in filename
        for part in (
            "/sqlalchemy/",
            "/aiosqlite/",
            "/sqlite3/",
            "sqlite3.Connection",
            "sqlite3.Cursor",
        )
    ):
        return "sqlalchemy + sqlite"
    return "other"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def db_bytes(state_dir: Path) -> int:
    """Bytes of used pages, WAL included (file sizes jump with WAL checkpoints)."""
    with contextlib.closing(sqlite3.connect(state_dir / "monitor.db", timeout=10)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


class Counter:
    """Counts finished cycles; profiles from the end of the first round (warm-up: imports,
    migrations, market lists) to the last cycle, then stops the daemon."""

    def __init__(self, accounts: int, rounds: int, state_dir: Path, profile: bool = True) -> None:
        self.accounts, self.rounds, self.state_dir = accounts, rounds, state_dir
        self.profile = profile
        self.kinds: dict[str, int] = {}
        self.by_clock = 0
        self.examples: dict[str, str] = {}
        self.cycles = self.errors = 0
        self.daemon: Daemon | None = None
        # CPU time, not wall time: the idle event loop must not count as anyone's cost.
        self.profiler = cProfile.Profile(time.process_time)
        self.warm: tuple[int, int, float, float, int, int] | None = None
        self.end: tuple[float, float, int, int, int, int] | None = None

    def cycle_finished(self, report: CycleReport) -> None:
        if report.by_clock:
            # A stale-data check by the clock (polls fell behind), not a poll: not counted.
            self.by_clock += 1
            return
        self.cycles += 1
        self.errors += report.error_kind is not None
        if report.error_kind is not None:
            kind = str(report.error_kind)
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            self.examples.setdefault(kind, report.error or "")
        if self.warm is None and self.cycles >= self.accounts:
            self.warm = (
                rss_kib(),
                db_bytes(self.state_dir),
                time.process_time(),
                time.monotonic(),
                self.cycles,
                open_fds(),
            )
            if self.profile:
                self.profiler.enable()
        elif (
            self.end is None
            and self.cycles >= self.accounts * self.rounds
            and self.daemon is not None
        ):
            self.profiler.disable()
            self.end = (
                time.process_time(),
                time.monotonic(),
                self.cycles,
                rss_kib(),
                db_bytes(self.state_dir),
                open_fds(),
            )
            self.daemon.stop()


def keys_of(scenario_path: Path) -> dict[str, tuple[str, str]]:
    from monitor.simulator.scenario import load_scenario

    loaded = load_scenario(scenario_path)
    return {a.name: (a.api_key, a.api_secret) for a in loaded.accounts}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pacing", choices=("venue", "off"), default="venue")
    parser.add_argument("--pacer", choices=("ours", "ccxt"), default="ours")
    parser.add_argument("--session", choices=("shared", "own"), default="shared")
    parser.add_argument(
        "--no-profile", action="store_true", help="plain CPU time, without cProfile's overhead"
    )
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds: at least 2 (the first round is the warm-up)")
    configure(args)
    configure_logging(logging.ERROR, rich_tty=False)

    work = Path(tempfile.mkdtemp(prefix="portfolio-monitor-soak-"))
    scenario_path = work / "scenario.json"
    scenario_path.write_text(json.dumps(scenario(args.accounts, args.positions, args.seed)))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    simulator = subprocess.Popen(
        [sys.executable, "-c", SIMULATOR, str(scenario_path), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert simulator.stdout is not None
        assert simulator.stdout.readline().strip() == "ready", "simulator did not start"
        state_dir = work / "state"
        config_path = work / "config.toml"
        config(
            config_path,
            state_dir,
            f"http://127.0.0.1:{port}",
            keys_of(scenario_path),
            args.interval,
        )
        counter = Counter(args.accounts, args.rounds, state_dir, not args.no_profile)
        baseline.update(rss=rss_kib(), fds=open_fds())
        daemon = Daemon(DaemonOptions(config_path=config_path, handle_signals=False), [counter])
        counter.daemon = daemon
        asyncio.run(daemon.run())
    finally:
        simulator.terminate()
        simulator.wait(10)
    report(args, counter)


baseline: dict[str, int] = {}


def configure(args: argparse.Namespace) -> None:
    """Swap in the baselines the flags ask for (the daemon builds its hub in monitor.wiring)."""
    import ccxt.async_support  # noqa: F401  (imported before the baseline RSS is taken)
    from ccxt.async_support.base.throttler import Throttler

    import monitor.wiring
    from monitor.exchanges import base
    from monitor.exchanges.hub import ExchangeHub

    hub = functools.partial(
        ExchangeHub, rate_limit=args.pacing == "venue", share_session=args.session == "shared"
    )
    setattr(monitor.wiring, "ExchangeHub", hub)  # noqa: B010  (mypy: not an exported name)
    if args.pacer == "ccxt":

        def ccxt_throttler(self: Any, cost: Any = None) -> None:
            self.throttler = Throttler(self.tokenBucket, self.asyncio_loop)

        base._Paced.init_throttler = ccxt_throttler  # type: ignore[method-assign]


def report(args: argparse.Namespace, counter: Counter) -> None:
    assert counter.warm is not None, "not even one round finished"
    assert counter.end is not None, "the daemon stopped before the last round"
    warm_rss, _, warm_cpu, warm_wall, warm_cycles, warm_fds = counter.warm
    end_cpu, end_wall, end_cycles, _, _, end_fds = counter.end
    cycles = end_cycles - warm_cycles
    cpu, wall = end_cpu - warm_cpu, end_wall - warm_wall
    round_time = wall / (cycles / args.accounts)
    print(
        f"soak: {args.accounts} accounts x {args.positions} positions, {args.rounds} rounds, "
        f"poll every {args.interval:g}s; {counter.cycles} account-cycles ({counter.errors} failed{': ' if counter.kinds else ''}"
        f"{', '.join(f'{k} {n}' for k, n in sorted(counter.kinds.items()))}; "
        f"{counter.by_clock} stale checks by the clock); "
        f"after warm-up {cycles} in {wall:.1f}s wall, {cpu:.1f}s CPU"
    )
    for kind, example in sorted(counter.examples.items()):
        print(f"  e.g. {kind}: {example}")
    print(
        f"setup: pacing {args.pacing}, pacer {args.pacer}, session {args.session}; "
        f"wall per round {round_time:.1f}s (interval {args.interval:g}s; issue 10: 20 s for 1,000 "
        f"accounts unpaced -> {round_time / 20:.2f}x)"
    )
    per_account_rss = (warm_rss - baseline["rss"]) / args.accounts / 1024
    per_account_fds = (warm_fds - baseline["fds"]) / args.accounts
    print(
        f"per account: {per_account_rss:.3f} MiB RSS, {per_account_fds:.2f} fds "
        f"(before start {baseline['rss'] / 1024:.1f} MiB, {baseline['fds']} fds; "
        f"after warm-up {warm_rss / 1024:.1f} MiB, {warm_fds} fds; at end {end_fds} fds); "
        f"issue 10: 1.05 MiB and 2 fds per account -> "
        f"{per_account_rss / 1.05:.2f}x and {per_account_fds / 2:.2f}x"
    )
    profiled_or_not = "plain" if args.no_profile else "profiled, with cProfile overhead"
    print(
        f"CPU per account-cycle: {cpu / cycles * 1000:.2f} ms ({profiled_or_not}; issue 10, "
        f"unpaced: 4.5 ms at 50 accounts, 13.4 ms at 1,000 -> "
        f"{cpu / cycles * 1000 / 13.4:.2f}x the latter)"
    )
    if not args.no_profile:
        print_profile(counter.profiler, cycles)
    print_rss(args, counter)


def print_profile(profiler: cProfile.Profile, cycles: int) -> None:
    stats = pstats.Stats(profiler)
    buckets = dict.fromkeys(BUCKETS, 0.0)
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        buckets[bucket_of(filename)] += tottime
    profiled = sum(buckets.values()) or 1.0
    others = sorted(
        (
            (tottime, f"{filename.rsplit('/', 2)[-1] if filename != '~' else ''}:{function}")
            for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items()  # type: ignore[attr-defined]
            if bucket_of(filename) == "other"
        ),
        reverse=True,
    )[:5]
    for name in BUCKETS:
        share = buckets[name] / profiled
        print(f"  {name:<22} {buckets[name] / cycles * 1000:7.2f} ms/account-cycle  {share:6.1%}")
    print("  largest in other: " + ", ".join(f"{name} {t / profiled:.1%}" for t, name in others))
    ours = buckets["ours (monitor/)"] / profiled
    print(
        f"our code vs ccxt: {buckets['ours (monitor/)'] / max(buckets['ccxt'], 1e-9):.2f}x; "
        f"our share {ours:.1%} (target < 25 %: {'met' if ours < 0.25 else 'NOT met'})"
    )


def print_rss(args: argparse.Namespace, counter: Counter) -> None:
    assert counter.warm is not None
    assert counter.end is not None
    warm_rss, warm_db, _, _, warm_cycles, _ = counter.warm
    _, _, end_cycles, end_rss, end_db, _ = counter.end
    cycles = end_cycles - warm_cycles
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    growth = (end_rss - warm_rss) / warm_rss if warm_rss else 0.0
    print(
        f"RSS: {warm_rss / 1024:.1f} MiB after warm-up, {end_rss / 1024:.1f} MiB at end "
        f"({growth:+.1%}; target < 5 %: {'met' if growth < 0.05 else 'NOT met'}), peak {peak_rss / 1024:.1f} MiB"
    )
    per_cycle = (end_db - warm_db) / cycles
    print(
        f"database: {warm_db / 1e6:.2f} MB after warm-up, {end_db / 1e6:.2f} MB at end "
        f"({per_cycle:.0f} bytes per account-cycle, "
        f"{per_cycle / args.positions:.0f} per position row incl. account row and indexes)"
    )


if __name__ == "__main__":
    main()
