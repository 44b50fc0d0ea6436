"""Start the exchange simulator in-process on a free 127.0.0.1 port, and point real ccxt at it.

    from tests.support.simulator import running_simulator, ccxt_client

    async with running_simulator("test") as sim:           # ManualClock by default
        sim.base_url, sim.accounts["binance-oneway"].api_key
        exchange = ccxt_client(sim, "binance-oneway", "binanceusdm")
        try:
            await exchange.fetch_positions()
        finally:
            await exchange.close()

or ask for the `simulator` fixture (test scenario, manual clock; defined in tests/conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async

from monitor.config import AccountSettings
from monitor.domain.model import Venue
from monitor.simulator import ManualClock, SimClock, SimulatorServer

# A fixed start keeps payload timestamps reproducible; signatures use real time, not this clock.
MANUAL_START = datetime(2026, 1, 1, tzinfo=UTC)
_HOST = re.compile(r"^https?://[^/]+")


@asynccontextmanager
async def running_simulator(
    scenario: str | Path | dict[str, Any] = "test", *, clock: SimClock | None = None
) -> AsyncIterator[SimulatorServer]:
    """A started simulator (manual clock unless one is given), stopped on exit."""
    server = SimulatorServer(
        scenario, clock=clock if clock is not None else ManualClock(MANUAL_START)
    )
    async with server:
        yield server


def localize_urls(urls: Any, base_url: str) -> Any:
    """ccxt's `urls['api']` with scheme and host of every entry replaced by `base_url` (nested too)."""
    if isinstance(urls, dict):
        return {key: localize_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str):
        return _HOST.sub(base_url, urls)
    return urls


def ccxt_client(sim: SimulatorServer, account: str | None, exchange_id: str, **config: Any) -> Any:
    """A real ccxt async exchange (binanceusdm, binancecoinm, bybit) for `account` (None: no keys)."""
    options: dict[str, Any] = {"fetchCurrencies": False}
    if exchange_id == "bybit":
        options = {"fetchMarkets": {"types": ["linear", "inverse"]}}
    options |= config.pop("options", {})
    settings: dict[str, Any] = {"options": options, "enableRateLimit": False} | config
    if account is not None:
        info = sim.accounts[account]
        settings |= {"apiKey": info.api_key, "secret": info.api_secret}
    exchange = getattr(ccxt_async, exchange_id)(settings)
    exchange.urls["api"] = localize_urls(exchange.urls["api"], sim.base_url)
    if exchange_id == "bybit":
        exchange.has["fetchCurrencies"] = False
    return exchange


def account_settings(
    sim: SimulatorServer, account: str, venue: Venue | str | None = None, **fields: Any
) -> AccountSettings:
    """Settings that point at the simulator's `account`: its keys, the simulator's URL and `venue`
    (by default binance-usdm for a Binance account, bybit-linear for a Bybit one); `fields` add
    or override any other setting (poll_interval, asset, volatility, api_key, ...)."""
    info = sim.accounts[account]
    if venue is None:
        venue = Venue.BINANCE_USDM if info.exchange == "binance" else Venue.BYBIT_LINEAR
    return AccountSettings.model_validate(
        {
            "venue": Venue(venue),
            "api_key": info.api_key,
            "api_secret": info.api_secret,
            "base_url": sim.base_url,
            **fields,
        }
    )
