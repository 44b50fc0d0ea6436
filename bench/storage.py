"""Storage benchmark: cycle inserts vs a naive writer, bytes per position row, history query time.

Run: .venv/bin/python bench/storage.py [--cycles N] [--days D]
Prints, in one run:
- position rows/s stored in 20-position poll cycles through SqlStore.cycle() (target >= 50,000/s),
  and the same rows written by a naive one-row-per-statement writer (each row committed alone);
- bytes per stored position row after VACUUM, the account snapshot rows included (target <= 80);
- time of `history --every 1h` over 30 days of 10-second snapshots of 10 accounts (target < 200 ms),
  after retention has downsampled everything older than 7 days.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from typer.testing import CliRunner

import monitor.cli.commands  # noqa: F401  (registers the commands)
from monitor.cli.app import app
from monitor.domain.model import (
    AccountRisk,
    AccountState,
    ExchangeAccountFigures,
    MarginMode,
    Position,
    PositionRisk,
    Side,
    Snapshot,
    Tier,
    Venue,
)
from monitor.storage import queries
from monitor.storage.decode import to_millis
from monitor.storage.migrate import prepare_database

POSITIONS = 20
START = datetime(2026, 1, 1, tzinfo=UTC)
TIERS = (Tier(0.0, 50_000.0, 0.004, 0.0), Tier(50_000.0, 250_000.0, 0.005, 50.0))


def make_snapshot(account: str, index: int, rng: random.Random) -> Snapshot:
    """One poll: 20 cross positions with marks that move every cycle."""
    held, computed = [], []
    for n in range(POSITIONS):
        entry = 100.0 * (n + 1) * 1.0137
        mark = entry * (1 + rng.gauss(0, 0.01))
        liquidation = entry * (0.7 + rng.random() * 0.01)
        side = Side.LONG if n % 3 else Side.SHORT
        held.append(
            Position(
                symbol=f"SYM{n}USDT",
                side=side,
                margin_mode=MarginMode.CROSS,
                quantity=1.5 + n,
                entry_price=entry,
                mark_price=mark,
                tiers=TIERS,
                leverage=10.0,
                exchange_liquidation_price=liquidation * 1.0003,
            )
        )
        computed.append(
            PositionRisk(
                symbol=f"SYM{n}USDT",
                side=side,
                margin_mode=MarginMode.CROSS,
                notional=mark * (1.5 + n),
                unrealized_pnl=side.sign * (mark - entry) * (1.5 + n),
                maintenance_margin=mark * (1.5 + n) * 0.004,
                liquidation_price=liquidation,
                distance_to_liquidation=abs(mark - liquidation) / mark,
            )
        )
    state = AccountState(
        venue=Venue.BINANCE_USDM,
        wallet_balance=50_000.0,
        positions=tuple(held),
        reported=ExchangeAccountFigures(
            equity=50_321.4, maintenance_margin=812.3, margin_ratio=0.0161
        ),
    )
    risk = AccountRisk(
        equity=50_000.0 + rng.gauss(0, 100),
        maintenance_margin=812.3 + rng.random(),
        margin_ratio=3.0 + rng.random(),
        exchange_margin_ratio=0.3 + rng.random() / 10,
        account_liquidation_move=-0.2 - rng.random() / 100,
        positions=tuple(computed),
    )
    return Snapshot(account, START + timedelta(seconds=10 * index), state, risk)


async def cycle_inserts(
    path: Path, snapshots: list[Snapshot], rounds: int = 3
) -> tuple[float, float]:
    """Position rows/s through the daemon's one-transaction-per-cycle path (best of `rounds`),
    by the wall clock and per CPU-second of this process (other load on the machine aside)."""
    store = await prepare_database(f"sqlite:///{path}")
    try:
        async with store.cycle() as cycle:  # warm-up: ids of account, symbols, legs, tiers
            await cycle.add_snapshot(snapshots[0])
        best = best_cpu = 0.0
        per_round = (len(snapshots) - 1) // rounds
        for number in range(rounds):
            batch = snapshots[1 + number * per_round : 1 + (number + 1) * per_round]
            began, cpu = time.perf_counter(), time.process_time()
            for snapshot in batch:
                async with store.cycle() as cycle:
                    await cycle.add_snapshot(snapshot)
            best = max(best, len(batch) * POSITIONS / (time.perf_counter() - began))
            best_cpu = max(best_cpu, len(batch) * POSITIONS / (time.process_time() - cpu))
    finally:
        await store.close()
    return best, best_cpu


async def naive_inserts(path: Path, snapshots: list[Snapshot]) -> float:
    """Position rows/s when every row is its own INSERT, committed alone (same engine, schema)."""
    store = await prepare_database(f"sqlite:///{path}")
    try:
        async with store.cycle() as cycle:
            await cycle.add_snapshot(snapshots[0])
        began = time.perf_counter()
        for number, snapshot in enumerate(snapshots[1:], start=2):
            async with store.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO account_snapshot (id, account_id, taken_at, equity,"
                        " wallet_balance, maintenance_margin) VALUES (:id, 1, :t, :e, :w, :m)"
                    ),
                    {
                        "id": number,
                        "t": to_millis(snapshot.taken_at),
                        "e": snapshot.risk.equity,
                        "w": snapshot.state.wallet_balance,
                        "m": snapshot.risk.maintenance_margin,
                    },
                )
            for ordinal, (held, computed) in enumerate(
                zip(snapshot.state.positions, snapshot.risk.positions, strict=True)
            ):
                async with store.engine.begin() as conn:
                    await conn.execute(
                        text(
                            "INSERT INTO position_snapshot (snapshot_id, ordinal, leg_id,"
                            " mark_price, unrealized_pnl, maintenance_margin, liquidation_price,"
                            " exchange_liquidation_price) VALUES (:s, :o, :l, :m, :p, :mm, :liq, :x)"
                        ),
                        {
                            "s": number,
                            "o": ordinal,
                            "l": ordinal + 1,
                            "m": held.mark_price,
                            "p": computed.unrealized_pnl,
                            "mm": computed.maintenance_margin,
                            "liq": computed.liquidation_price,
                            "x": held.exchange_liquidation_price,
                        },
                    )
        elapsed = time.perf_counter() - began
    finally:
        await store.close()
    return (len(snapshots) - 1) * POSITIONS / elapsed


def bytes_per_position_row(path: Path) -> tuple[float, int]:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("VACUUM")
        # In WAL mode the compacted pages reach the main file only at a checkpoint.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT count(*) FROM position_snapshot").fetchone()[0]
    return path.stat().st_size / rows, rows


def time_cli(args: list[str]) -> float:
    """Seconds for one in-process run of the CLI command (JSON output discarded)."""
    runner = CliRunner()
    began = time.perf_counter()
    result = runner.invoke(app, args)
    elapsed = time.perf_counter() - began
    assert result.exit_code == 0, result.stderr
    return elapsed


def rollup_rows(raw: list[tuple[Any, ...]], resolution: int) -> list[tuple[Any, ...]]:
    """What the writer's per-cycle upserts leave in account_rollup for these raw rows."""
    span = resolution * 1000
    buckets: dict[int, list[tuple[Any, ...]]] = {}
    for row in raw:
        buckets.setdefault(row[1] // span * span, []).append(row)
    out = []
    for start, rows in buckets.items():
        last = rows[-1]
        ratios = [r[5] for r in rows]
        out.append(
            (
                last[0],
                resolution,
                start,
                len(rows),
                last[1],
                last[2],
                last[3],
                last[4],
                last[5],
                min(ratios),
                max(ratios),
                last[6],
                last[6],
                last[6],
                last[7],
                min(r[8] for r in rows),
            )
        )
    return out


async def history_query(path: Path, days: int, accounts: int) -> dict[str, float]:
    """Seconds for hourly history over `days` of 10 s snapshots, after the daily prune."""
    url = f"sqlite:///{path}"
    store = await prepare_database(url)
    for n in range(accounts):
        await store.register_account(
            f"acct-{n}", venue="binance-usdm", asset="USDT", poll_interval=10, now=START
        )
    await store.close()
    per_account = days * 8640
    rng = random.Random(7)
    began = time.perf_counter()
    # Bulk generation straight through sqlite3 (raw rows and the minute/hour rows the writer
    # keeps up to date); the figure measured is the read, not this.
    with closing(sqlite3.connect(path)) as conn, conn:
        start_ms = to_millis(START)
        for account_id in range(1, accounts + 1):
            raw = [
                (
                    account_id,
                    start_ms + i * 10_000,
                    50_000.0 + (i % 977),
                    50_000.0,
                    800.0 + (i % 13),
                    3.0 + rng.random(),
                    0.3,
                    -0.2,
                    0.25 + (i % 101) / 1000,
                )
                for i in range(per_account)
            ]
            conn.executemany(
                "INSERT INTO account_snapshot (account_id, taken_at, equity, wallet_balance,"
                " maintenance_margin, margin_ratio, exchange_margin_ratio,"
                " account_liquidation_move, nearest_distance) VALUES (?,?,?,?,?,?,?,?,?)",
                raw,
            )
            for resolution in (60, 3600):
                conn.executemany(
                    "INSERT INTO account_rollup VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    rollup_rows(raw, resolution),
                )
    generated = time.perf_counter() - began
    end = START + timedelta(days=days)
    store = await prepare_database(url)
    try:
        began = time.perf_counter()
        await store.prune(end)
        pruned = time.perf_counter() - began
        timings_one, timings_all = [], []
        for _ in range(5):
            began = time.perf_counter()
            points = await queries.account_history(store, "acct-0", START, end, 3600)
            timings_one.append(time.perf_counter() - began)
            began = time.perf_counter()
            for n in range(accounts):
                await queries.account_history(store, f"acct-{n}", START, end, 3600)
            timings_all.append(time.perf_counter() - began)
        assert len(points) == days * 24, len(points)
    finally:
        await store.close()
    command = [
        "history",
        *("--database", url, "--every", "1h", "--format", "json"),
        *("--since", START.isoformat(), "--until", end.isoformat()),
    ]
    # The command runs its own event loop: time it from a thread without one.
    cli_times = [await asyncio.to_thread(time_cli, command) for _ in range(3)]
    return {
        "cli_s": statistics.median(cli_times),
        "rows": per_account * accounts,
        "generate_s": generated,
        "prune_s": pruned,
        "one_account_s": statistics.median(timings_one),
        "all_accounts_s": statistics.median(timings_all),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1500, help="20-position cycles to insert")
    parser.add_argument("--naive-cycles", type=int, default=150)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--accounts", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(1)
    snapshots = [make_snapshot("main", i, rng) for i in range(args.cycles + 1)]
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        root = Path(tmp)
        fast, fast_cpu = await cycle_inserts(root / "cycles.db", snapshots)
        naive = await naive_inserts(root / "naive.db", snapshots[: args.naive_cycles + 1])
        size, rows = bytes_per_position_row(root / "cycles.db")
        history = await history_query(root / "history.db", args.days, args.accounts)
    print(f"load average (1 min) during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"cycle inserts (20 positions per transaction, best of 3): {fast:,.0f} position rows/s"
        f" wall clock, {fast_cpu:,.0f} per CPU-second (target >= 50,000)"
    )
    print(f"naive writer (one row per statement and commit): {naive:,.0f} position rows/s")
    print(f"ratio: {fast / naive:.1f}x")
    print(
        f"stored size after VACUUM: {size:.1f} bytes per position row over {rows:,} rows (target <= 80)"
    )
    print(
        f"history --every 1h over {args.days} days of 10 s snapshots "
        f"({history['rows']:,.0f} snapshots, {args.accounts} accounts, raw kept 7 days):"
    )
    print(
        f"  one account: {history['one_account_s'] * 1000:.0f} ms; all {args.accounts} accounts: {history['all_accounts_s'] * 1000:.0f} ms (target < 200)"
    )
    print(
        f"  the whole command (`history --every 1h --format json`, all accounts, in-process):"
        f" {history['cli_s'] * 1000:.0f} ms"
    )
    print(
        f"  (bulk generation {history['generate_s']:.1f} s, prune/downsampling {history['prune_s']:.1f} s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
