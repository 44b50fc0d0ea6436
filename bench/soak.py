"""Soak: the real daemon polling many simulated accounts; where the CPU goes and whether memory stays flat.

    .venv/bin/python bench/soak.py [--accounts 200] [--positions 20] [--rounds 3] [--interval 2]
        [--pacing venue|off] [--pacer ours|ccxt] [--session shared|own]
    .venv/bin/python bench/soak.py --marks live [--accounts 1000] [--minutes 10] [--warmup 90]
        [--reconcile 60] [--interval 10] [--pacing off]

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

`--marks poll` (the default) polls every account every `--interval` with the mark streams off.
`--marks live` runs the live path instead: the simulator pushes every held mark every second
over its websockets, each push recomputes every account holding the symbol (at most once per
account per second) and REST only reconciles every `--reconcile` seconds (the account falls back
to `--interval`, default 10 s as shipped, while its stream is down). After the first full fetch of
every account and `--warmup` seconds more, the run lasts `--minutes` and prints: RSS per account,
the daemon's CPU as a share of one core over the wall time (profile with cProfile unless
`--no-profile`, whose figure is the one to quote), RSS sampled every 10 s (flatness: end against
the start of the window) and the REST weight spent per account per minute (ccxt's own cost of
every request the daemon made) against polling every `--interval` at the weight one full fetch
cost in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import gc
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
    path: Path,
    state_dir: Path,
    base_url: str,
    keys: dict[str, tuple[str, str]],
    interval: float,
    reconcile: float | None = None,
) -> None:
    """The daemon's configuration; `reconcile` None polls only (the mark streams off)."""
    lines = [f"state_dir = {json.dumps(str(state_dir))}", "[streams]"]
    if reconcile is None:
        lines.append("enabled = false")
    else:
        lines += ["enabled = true", f'reconcile_interval = "{reconcile:g}s"']
    for name, (key, secret) in sorted(keys.items()):
        lines += [
            f"[accounts.{name}]",
            'venue = "binance-usdm"',
            f"api_key = {json.dumps(key)}",
            f"api_secret = {json.dumps(secret)}",
            f'poll_interval = "{interval:g}s"',
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


class Weight:
    """REST weight the daemon spent: ccxt's cost of every request (what its throttle counts,
    whether or not pacing is on), summed over every instance."""

    spent = 0.0
    requests = 0
    by_path: dict[str, float] = {}  # noqa: RUF012  (one tally for the whole run)
    requests_by_path: dict[str, int] = {}  # noqa: RUF012


class GcTime:
    """Seconds the cyclic garbage collector ran, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.runs[generation] += 1

    def total(self) -> float:
        return sum(self.seconds)


class LiveCounter:
    """The live soak: counts full fetches and live recomputes, samples RSS and CPU every
    `SAMPLE` seconds from the warm mark on, and stops the daemon `minutes` later."""

    SAMPLE = 10.0

    def __init__(self, accounts: int, warmup: float, minutes: float, profile: bool) -> None:
        self.accounts, self.warmup, self.minutes = accounts, warmup, minutes
        self.profile = profile
        self.profiler = cProfile.Profile(time.process_time)
        self.daemon: Daemon | None = None
        self.fetches = self.recomputes = self.errors = self.by_clock = 0
        self.kinds: dict[str, int] = {}
        self.examples: dict[str, str] = {}
        self.fetched: set[str] = set()
        self.health: dict[str, str | None] = {}
        self.first_round = asyncio.Event()
        # (monotonic, process CPU, RSS KiB, full fetches, recomputes, weight, requests, failed)
        self.samples: list[tuple[float, float, int, int, int, float, int, int]] = []
        self.warm_fds = 0
        self.gc = GcTime()
        # Weight and requests by path at the start of the window.
        self.paths_at_warm: tuple[dict[str, float], dict[str, int]] = ({}, {})
        self.gc_at_warm: tuple[list[float], list[int]] = ([0.0] * 3, [0] * 3)

    def cycle_finished(self, report: CycleReport) -> None:
        if report.stream is not None:
            self.health[report.account] = report.stream
        if report.by_clock:
            self.by_clock += 1
            return
        if report.live:
            self.recomputes += 1
        else:
            self.fetches += 1
            self.fetched.add(report.account)
            if len(self.fetched) >= self.accounts:
                self.first_round.set()
        if report.error_kind is not None:
            self.errors += 1
            kind = str(report.error_kind)
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            self.examples.setdefault(kind, report.error or "")

    def sample(self) -> None:
        self.samples.append(
            (
                time.monotonic(),
                time.process_time(),
                rss_kib(),
                self.fetches,
                self.recomputes,
                Weight.spent,
                Weight.requests,
                self.errors,
            )
        )

    async def drive(self, daemon: Daemon) -> None:
        """Run the daemon through the warm-up and the soak window, sampling as it goes."""
        self.daemon = daemon
        running = asyncio.create_task(daemon.run())
        waiting = asyncio.create_task(self.first_round.wait())
        await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            waiting.cancel()
            await running
            raise SystemExit("the daemon stopped before every account was fetched once")
        await asyncio.sleep(self.warmup)
        self.warm_fds = open_fds()
        self.gc_at_warm = (list(self.gc.seconds), list(self.gc.runs))
        self.paths_at_warm = (dict(Weight.by_path), dict(Weight.requests_by_path))
        self.sample()
        if self.profile:
            self.profiler.enable()
        end = time.monotonic() + self.minutes * 60
        while (left := end - time.monotonic()) > 0 and not running.done():
            await asyncio.sleep(min(self.SAMPLE, left))
            self.sample()
        self.profiler.disable()
        daemon.stop()
        await running


def count_weight() -> None:
    """Wrap ccxt's `fetch2` (every REST request) to add up what each request costs."""
    from ccxt.async_support.base.exchange import Exchange

    fetch2 = Exchange.fetch2

    async def counted(
        self: Any,
        path: Any,
        api: Any = "public",
        method: str = "GET",
        params: Any = None,
        config: Any = None,
    ) -> Any:
        params = {} if params is None else params
        config = {} if config is None else config
        cost = float(self.calculate_rate_limiter_cost(api, method, path, params, config))
        Weight.spent += cost
        Weight.requests += 1
        Weight.by_path[path] = Weight.by_path.get(path, 0.0) + cost
        Weight.requests_by_path[path] = Weight.requests_by_path.get(path, 0) + 1
        return await fetch2(self, path, api, method, params, config)

    Exchange.fetch2 = counted


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
    parser.add_argument(
        "--interval", type=float, default=None, help="poll_interval (s); 2, or 10 with live marks"
    )
    parser.add_argument("--marks", choices=("poll", "live"), default="poll")
    parser.add_argument("--minutes", type=float, default=10.0, help="live: the soak window")
    parser.add_argument(
        "--warmup", type=float, default=90.0, help="live: seconds after the first full round"
    )
    parser.add_argument("--reconcile", type=float, default=60.0, help="live: REST every (s)")
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
    if args.interval is None:
        args.interval = 10.0 if args.marks == "live" else 2.0
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
            args.reconcile if args.marks == "live" else None,
        )
        baseline.update(rss=rss_kib(), fds=open_fds())
        if args.marks == "live":
            live = LiveCounter(args.accounts, args.warmup, args.minutes, not args.no_profile)
            daemon = Daemon(DaemonOptions(config_path=config_path, handle_signals=False), [live])
            asyncio.run(live.drive(daemon))
        else:
            counter = Counter(args.accounts, args.rounds, state_dir, not args.no_profile)
            daemon = Daemon(DaemonOptions(config_path=config_path, handle_signals=False), [counter])
            counter.daemon = daemon
            asyncio.run(daemon.run())
        simulator_cpu = cpu_seconds(simulator.pid)
    finally:
        simulator.terminate()
        simulator.wait(10)
    if args.marks == "live":
        report_live(args, live, simulator_cpu)
    else:
        report(args, counter)


baseline: dict[str, int] = {}


def configure(args: argparse.Namespace) -> None:
    """Swap in the baselines the flags ask for (the daemon builds its hub in monitor.wiring)."""
    import ccxt.async_support  # noqa: F401  (imported before the baseline RSS is taken)
    from ccxt.async_support.base.throttler import Throttler

    import monitor.wiring
    from monitor.exchanges import base
    from monitor.exchanges.hub import ExchangeHub

    count_weight()
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


def print_profile(profiler: cProfile.Profile, cycles: int, unit: str = "account-cycle") -> None:
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
        print(f"  {name:<22} {buckets[name] / cycles * 1000:7.2f} ms/{unit}  {share:6.1%}")
    print("  largest in other: " + ", ".join(f"{name} {t / profiled:.1%}" for t, name in others))
    ours = buckets["ours (monitor/)"] / profiled
    print(
        f"our code vs ccxt: {buckets['ours (monitor/)'] / max(buckets['ccxt'], 1e-9):.2f}x; "
        f"our share {ours:.1%} (target < 25 %: {'met' if ours < 0.25 else 'NOT met'})"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report_live(args: argparse.Namespace, live: LiveCounter, simulator_cpu: float) -> None:
    assert len(live.samples) >= 2, "the soak window did not start"
    at0, cpu0, rss0, fetch0, rec0, weight0, req0, failed0 = live.samples[0]
    at1, cpu1, rss1, fetch1, rec1, weight1, req1, failed1 = live.samples[-1]
    wall, cpu = at1 - at0, cpu1 - cpu0
    fetches, recomputes = fetch1 - fetch0, rec1 - rec0
    n = args.accounts
    print(
        f"soak (live marks): {n} accounts x {args.positions} positions, marks pushed every "
        f"second, REST reconciles every {args.reconcile:g}s (poll_interval {args.interval:g}s "
        f"while a stream is down), pacing {args.pacing}, session {args.session}; "
        f"window {wall / 60:.1f} min after {args.warmup:g}s of warm-up; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    live_now = sum(1 for h in live.health.values() if h is not None and h.startswith("live"))
    print(
        f"in the window: {recomputes} live recomputes ({recomputes / wall:.0f}/s, "
        f"{recomputes / wall / n:.2f} per account per second), {fetches} full fetches, "
        f"{failed1 - failed0} failed cycles ({live.errors} in the whole run"
        f"{': ' if live.kinds else ''}{', '.join(f'{k} {c}' for k, c in sorted(live.kinds.items()))}"
        f"), {live.by_clock} stale checks by the clock in the whole run; accounts live at the "
        f"end {live_now}/{n}"
    )
    for kind, example in sorted(live.examples.items()):
        print(f"  e.g. {kind}: {example}")
    per_account = (rss0 - baseline["rss"]) / n / 1024
    per_fd = (live.warm_fds - baseline["fds"]) / n
    print(
        f"per account: {per_account:.3f} MiB RSS, {per_fd:.2f} fds (before start "
        f"{baseline['rss'] / 1024:.1f} MiB; after warm-up {rss0 / 1024:.1f} MiB); target 0.5 MiB "
        f"-> {per_account / 0.5:.2f}x; issue 10 polling: 1.05 MiB -> {per_account / 1.05:.2f}x"
    )
    share = cpu / wall
    profiled_or_not = "plain" if args.no_profile else "profiled, with cProfile overhead"
    print(
        f"CPU of the daemon: {share:.1%} of one core ({cpu:.1f}s over {wall:.1f}s, "
        f"{profiled_or_not}; {cpu / max(recomputes, 1) * 1000:.2f} ms per recompute, all work "
        f"included); target 50 % -> {share / 0.5:.2f}x ({'met' if share <= 0.5 else 'NOT met'}); "
        f"simulator (own process, not counted) {simulator_cpu:.0f}s of CPU in all"
    )
    if not args.no_profile:
        print_profile(live.profiler, max(recomputes, 1), unit="recompute")
        dump = Path(tempfile.gettempdir()) / "soak-live.prof"
        live.profiler.dump_stats(dump)
        print(f"  profile written to {dump} (python -m pstats)")
    rss = [s[2] for s in live.samples]
    growth = (rss1 - rss0) / rss0
    print(
        f"RSS over the window (every {live.SAMPLE:g}s): {rss0 / 1024:.1f} MiB at the start, "
        f"{rss1 / 1024:.1f} MiB at the end ({growth:+.1%}; target < 5 %: "
        f"{'met' if abs(growth) < 0.05 else 'NOT met'}), min {min(rss) / 1024:.1f}, "
        f"max {max(rss) / 1024:.1f} MiB ({(max(rss) - rss0) / rss0:+.1%} at most)"
    )
    minutes = wall / 60
    weight, requests = weight1 - weight0, req1 - req0
    streamed = weight / n / minutes
    per_fetch = weight / fetches if fetches else float("nan")
    # A poll without streams asks for the open orders every time (two requests per symbol);
    # with the user-data stream up they are kept between order events, so the fetches of the
    # window are cheaper than a poll: a poll costs the window's other weight per fetch plus
    # the open-order weight of one fetch that asked.
    weight_at_warm, requests_at_warm = live.paths_at_warm
    orders = ("openOrders", "openAlgoOrders")
    order_weight = sum(Weight.by_path.get(p, 0.0) - weight_at_warm.get(p, 0.0) for p in orders)
    asked = (
        Weight.requests_by_path.get("openAlgoOrders", 0) - requests_at_warm.get("openAlgoOrders", 0)
    ) / args.positions
    per_poll = (weight - order_weight) / max(fetches, 1) + (
        order_weight / asked if asked else 2.0 * args.positions
    )
    polled = per_poll * 60 / args.interval
    print(
        f"REST: {weight:.0f} weight in {requests} requests over the window: {streamed:.1f} weight "
        f"per account per minute with streams ({fetches} full fetches at {per_fetch:.1f} each; "
        f"{asked:.0f} of them asked for the open orders); a poll asking for them costs "
        f"{per_poll:.1f}, so polling every {args.interval:g}s costs {polled:.1f} -> "
        f"{polled / streamed:.1f}x lower with streams (target >= 5x: "
        f"{'met' if polled / streamed >= 5 else 'NOT met'})"
    )
    gc_seconds = live.gc.total() - sum(live.gc_at_warm[0])
    runs = [now - then for now, then in zip(live.gc.runs, live.gc_at_warm[1], strict=True)]
    print(
        f"garbage collector: {gc_seconds:.1f}s over the window ({gc_seconds / cpu:.1%} of the "
        f"daemon's CPU; {gc.get_freeze_count()} objects frozen, tracked now "
        f"{len(gc.get_objects())}; runs by generation {runs[0]}/{runs[1]}/{runs[2]}, "
        + "/".join(
            f"{now - then:.1f}s"
            for now, then in zip(live.gc.seconds, live.gc_at_warm[0], strict=True)
        )
        + ")"
    )
    heaviest = sorted(Weight.by_path.items(), key=lambda item: -item[1])[:5]
    print("  weight by path over the whole run: " + ", ".join(f"{p} {w:.0f}" for p, w in heaviest))


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
