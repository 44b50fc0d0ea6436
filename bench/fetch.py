"""One fetch round over many simulated accounts: wall time, and where the CPU time goes.

    .venv/bin/python bench/fetch.py [--accounts 50] [--positions 3] [--rounds 3]

Starts `portfolio-monitor simulate` as a separate process (so the server's CPU is not counted),
with half the accounts on Binance USDⓈ-M and half on Bybit linear, then fetches every account once
concurrently through `ExchangeHub`, as the daemon's poll jobs do:

- the cold round (markets, brackets and fee rates loaded) and warm rounds, with ccxt's request
  pacing on (production) and off (pure CPU + loopback latency);
- the warm round under cProfile, self time attributed by module path: our code (`monitor/`),
  ccxt, the HTTP stack (aiohttp, yarl, multidict) and the rest (asyncio, stdlib);
- the baseline, in the same run: the same accounts fetched with ccxt's unified
  `fetch_positions()` + `fetch_balance()`, which parse everything into ccxt structures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from monitor.config.accounts import AccountSettings
from monitor.domain.model import Venue
from monitor.exchanges import ExchangeHub

SYMBOLS = ["BTC", "ETH", "SOL", "XRP", "BNB", "DOGE"]
PRICES = {"BTC": 60_000, "ETH": 3_000, "SOL": 150, "XRP": 0.6, "BNB": 600, "DOGE": 0.15}


def scenario(accounts: int, positions: int) -> dict[str, Any]:
    """Half Binance USDⓈ-M, half Bybit linear accounts, each with `positions` cross longs."""
    tiers = [
        {"cap": 50_000, "mmr": "0.4%", "max_leverage": 125},
        {"cap": 600_000, "mmr": "0.5%", "max_leverage": 100},
        {"cap": 3_000_000, "mmr": "0.65%", "max_leverage": 75},
    ]
    instruments = [
        {
            "venue": venue,
            "symbol": f"{coin}USDT",
            "tick_size": "0.0001",
            "qty_step": "0.001",
            "tiers": tiers,
        }
        for venue in ("binance-usdm", "bybit-linear")
        for coin in SYMBOLS
    ]
    table: dict[str, Any] = {}
    for index in range(accounts):
        exchange = "binance" if index % 2 == 0 else "bybit"
        table[f"acct{index:03d}"] = {
            "exchange": exchange,
            "api_key": f"benchkey{index:03d}{exchange}",
            "api_secret": f"benchsecret{index:03d}",
            "wallet": {"USDT": 50_000},
            "positions": [
                {
                    "symbol": f"{coin}USDT",
                    "side": "long",
                    "quantity": round(5_000 / PRICES[coin], 3),
                    "entry_price": PRICES[coin],
                    "leverage": 10,
                }
                for coin in SYMBOLS[:positions]
            ],
        }
    return {
        "name": "bench-fetch",
        "feeds": {coin: {"price": price} for coin, price in PRICES.items()},
        "instruments": instruments,
        "accounts": table,
        "limits": {
            "binance_weight_per_minute": 0,
            "bybit_ip_requests_per_5s": 0,
            "bybit_uid_requests_per_second": 0,
        },
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_simulator(path: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "simulate", "--scenario", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    for line in process.stdout:
        if "listening on" in line:
            return process
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit("the simulator did not start")


def settings_for(document: dict[str, Any], base_url: str) -> dict[str, AccountSettings]:
    return {
        name: AccountSettings(
            venue=Venue.BINANCE_USDM if spec["exchange"] == "binance" else Venue.BYBIT_LINEAR,
            api_key=SecretStr(spec["api_key"]),
            api_secret=SecretStr(spec["api_secret"]),
            base_url=base_url,
        )
        for name, spec in document["accounts"].items()
    }


async def adapter_rounds(
    accounts: dict[str, AccountSettings], rounds: int, rate_limit: bool
) -> tuple[float, list[float], pstats.Stats | None]:
    """Cold round time, warm round times, and a profile of the last warm round."""
    async with ExchangeHub(rate_limit=rate_limit) as hub:
        clients = [hub.client_for(name, settings) for name, settings in accounts.items()]

        async def one_round() -> float:
            started = time.perf_counter()
            states = await asyncio.gather(*(client.fetch_account() for client in clients))
            elapsed = time.perf_counter() - started
            assert all(state.positions for state in states)
            return elapsed

        cold = await one_round()
        warm = [await one_round() for _ in range(rounds)]
        stats = None
        if not rate_limit:
            profiler = cProfile.Profile()
            profiler.enable()
            await one_round()
            profiler.disable()
            stats = pstats.Stats(profiler)
        return cold, warm, stats


async def unified_rounds(accounts: dict[str, AccountSettings], rounds: int) -> list[float]:
    """The baseline: ccxt's unified methods on the same accounts (markets shared, pacing off)."""
    async with ExchangeHub(rate_limit=False) as hub:
        clients = [hub.client_for(name, settings) for name, settings in accounts.items()]
        for client in clients:
            await client.ensure_markets()
            # Without our retry path a loaded machine can sign a request seconds before sending it.
            client.exchange.options["recvWindow"] = 30_000

        async def fetch(client: Any) -> None:
            exchange = client.exchange
            params = {"settleCoin": "USDT"} if client.venue is Venue.BYBIT_LINEAR else {}
            await asyncio.gather(exchange.fetch_positions(None, params), exchange.fetch_balance())

        times = []
        for _ in range(rounds + 1):
            started = time.perf_counter()
            await asyncio.gather(*(fetch(client) for client in clients))
            times.append(time.perf_counter() - started)
        return times[1:]


def attribute(stats: pstats.Stats) -> dict[str, float]:
    """Self time per part, by the path of the module each function lives in."""
    parts = {
        "ours (monitor/)": 0.0,
        "ccxt": 0.0,
        "http (aiohttp/yarl/multidict)": 0.0,
        "other": 0.0,
    }
    for (filename, _, _), (_, _, self_time, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        path = filename.replace("\\", "/")
        if "/monitor/" in path:
            parts["ours (monitor/)"] += self_time
        elif "/ccxt/" in path:
            parts["ccxt"] += self_time
        elif any(f"/{name}/" in path for name in ("aiohttp", "yarl", "multidict", "propcache")):
            parts["http (aiohttp/yarl/multidict)"] += self_time
        else:
            parts["other"] += self_time
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--positions", type=int, default=3, choices=range(1, len(SYMBOLS) + 1))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    document = scenario(args.accounts, args.positions)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.json"
        path.write_text(json.dumps(document))
        port = free_port()
        simulator = start_simulator(path, port)
        try:
            accounts = settings_for(document, f"http://127.0.0.1:{port}")
            cold, warm, stats = asyncio.run(adapter_rounds(accounts, args.rounds, rate_limit=False))
            paced_cold, paced_warm, _ = asyncio.run(adapter_rounds(accounts, 1, rate_limit=True))
            baseline = asyncio.run(unified_rounds(accounts, args.rounds))
        finally:
            simulator.terminate()
            simulator.wait(timeout=10)
    assert stats is not None
    best, best_baseline = min(warm), min(baseline)
    print(
        f"{args.accounts} accounts ({args.accounts // 2 + args.accounts % 2} Binance USDⓈ-M, "
        f"{args.accounts // 2} Bybit linear), {args.positions} positions each, simulator in another process"
    )
    print(
        f"fetch round, ccxt pacing off: cold {cold * 1000:.0f} ms, warm best {best * 1000:.0f} ms "
        f"(of {', '.join(f'{t * 1000:.0f}' for t in warm)} ms)"
    )
    print(
        f"fetch round, ccxt pacing on (production): cold {paced_cold * 1000:.0f} ms, "
        f"warm {paced_warm[0] * 1000:.0f} ms"
    )
    print(
        f"baseline, ccxt unified fetch_positions + fetch_balance: best {best_baseline * 1000:.0f} ms; "
        f"our round / baseline = {best / best_baseline:.2f}"
    )
    parts = attribute(stats)
    total = sum(parts.values())
    print(f"profiled warm round: {total * 1000:.0f} ms of CPU self time")
    for name, seconds in parts.items():
        print(f"  {name:32s} {seconds * 1000:8.1f} ms  {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
