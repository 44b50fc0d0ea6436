"""The venue mark streams as the daemon builds them (`ExchangeHub.mark_stream`): real ccxt.pro
over loopback to the simulator, websocket URLs rewritten from the account's `base_url`. A
stream that goes silent is reported down after its heartbeat and comes back by itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

from monitor.config import AccountSettings
from monitor.domain.model import Venue
from monitor.exchanges import ExchangeHub
from monitor.ports import MarkUpdate
from monitor.simulator import SimulatorServer
from tests.support.simulator import account_settings
from tests.support.waiting import wait_until


class Seen:
    """What a stream reported (a `MarkListener`)."""

    def __init__(self) -> None:
        self.updates: list[MarkUpdate] = []
        self.states: list[tuple[bool, str]] = []

    def marks(self, key: str, updates: Sequence[MarkUpdate]) -> None:
        self.updates.extend(updates)

    def health(self, key: str, up: bool, reason: str) -> None:
        self.states.append((up, reason))

    def prices(self, symbol: str) -> list[float]:
        return [u.price for u in self.updates if u.symbol == symbol]


@pytest.fixture
async def hub() -> AsyncIterator[ExchangeHub]:
    async with ExchangeHub(timeout=3) as opened:
        yield opened


def _settings(sim: SimulatorServer, venue: Venue) -> AccountSettings:
    account = "bybit-cross" if venue.exchange == "bybit" else "binance-oneway"
    return account_settings(sim, account, venue)


@pytest.mark.parametrize(
    ("venue", "symbol"),
    [
        (Venue.BINANCE_USDM, "BTCUSDT"),
        (Venue.BINANCE_COINM, "BTCUSD_PERP"),
        (Venue.BYBIT_LINEAR, "BTCUSDT"),
        (Venue.BYBIT_INVERSE, "BTCUSD"),
    ],
)
async def test_each_venue_streams_the_marks_of_the_followed_symbols(
    simulator: SimulatorServer, hub: ExchangeHub, venue: Venue, symbol: str
) -> None:
    settings = _settings(simulator, venue)
    stream = hub.mark_stream(settings, heartbeat=5)
    assert stream.key == f"{venue.value}@{simulator.base_url}"
    seen = Seen()
    task = asyncio.create_task(stream.run(seen))
    try:
        stream.follow(frozenset({symbol}))
        await wait_until(lambda: seen.prices(symbol), 5, "the stream")
        assert seen.prices(symbol)[0] == 60_000.0
        assert seen.states == [(True, "streaming")]
        simulator.set_price("BTC", 57_000.0)
        await wait_until(lambda: 57_000.0 in seen.prices(symbol), 3, "the stream")
        assert {u.symbol for u in seen.updates} == {symbol}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stream.close()


async def test_a_silent_stream_is_down_after_its_heartbeat_and_recovers(
    simulator: SimulatorServer, hub: ExchangeHub
) -> None:
    stream = hub.mark_stream(_settings(simulator, Venue.BINANCE_USDM), heartbeat=1)
    seen = Seen()
    task = asyncio.create_task(stream.run(seen))
    try:
        stream.follow(frozenset({"BTCUSDT"}))
        await wait_until(lambda: seen.states == [(True, "streaming")], 5, "the stream")
        await simulator.streams.set_mode("silent")
        await wait_until(lambda: len(seen.states) >= 2, 4, "the stream")
        up, reason = seen.states[1]
        assert not up
        assert reason == "binance-usdm mark stream: no message for 1s"
        # Reconnect attempts back off (1 s, 2 s, ...): no busy loop while it stays silent.
        await asyncio.sleep(2.5)
        assert len(seen.states) == 2
        assert simulator.streams.connections <= 1
        await simulator.streams.set_mode("on")
        await wait_until(lambda: seen.states[-1] == (True, "streaming"), 8, "the stream")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stream.close()


async def test_a_symbol_the_venue_does_not_list_leaves_the_others_streaming(
    simulator: SimulatorServer, hub: ExchangeHub, caplog: pytest.LogCaptureFixture
) -> None:
    stream = hub.mark_stream(_settings(simulator, Venue.BINANCE_USDM), heartbeat=5)
    seen = Seen()
    task = asyncio.create_task(stream.run(seen))
    try:
        stream.follow(frozenset({"BTCUSDT", "NOPEUSDT"}))
        await wait_until(lambda: seen.prices("BTCUSDT"), 5, "the stream")
        assert seen.states == [(True, "streaming")]
        assert "the venue lists no market NOPEUSDT" in caplog.text
        assert not seen.prices("NOPEUSDT")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stream.close()
