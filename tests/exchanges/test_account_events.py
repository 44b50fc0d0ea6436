"""The private account streams as the daemon builds them (`ExchangeHub.account_stream`): real
ccxt.pro over loopback to the simulator. A fill or a transfer in the simulator is an event; a
stream the venue drops is reported down, without its listenKey in the reason, and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

from monitor.config import AccountSettings
from monitor.domain.model import Venue
from monitor.exchanges import ExchangeHub
from monitor.exchanges.account_events import redact
from monitor.retry import RetryPolicy
from monitor.simulator import SimulatorServer
from monitor.simulator.scenario import OrderSpec
from tests.support.simulator import account_settings
from tests.support.waiting import wait_until


class Seen:
    """What a stream reported (an `AccountEventListener`)."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.states: list[tuple[bool, str]] = []

    def account_event(self, account: str, what: str) -> None:
        self.events.append(what)

    def account_stream(self, account: str, up: bool, reason: str) -> None:
        self.states.append((up, reason))


@pytest.fixture
async def hub() -> AsyncIterator[ExchangeHub]:
    async with ExchangeHub(timeout=3) as opened:
        yield opened


def _settings(sim: SimulatorServer, venue: Venue) -> AccountSettings:
    account = "bybit-cross" if venue.exchange == "bybit" else "binance-oneway"
    return account_settings(sim, account, venue)


@pytest.mark.parametrize(
    ("venue", "account", "symbol"),
    [
        (Venue.BINANCE_USDM, "binance-oneway", "BTCUSDT"),
        (Venue.BINANCE_COINM, "binance-oneway", "BTCUSD_PERP"),
        (Venue.BYBIT_LINEAR, "bybit-cross", "ETHUSDT"),
    ],
)
async def test_a_fill_and_a_transfer_are_events(
    simulator: SimulatorServer, hub: ExchangeHub, venue: Venue, account: str, symbol: str
) -> None:
    stream = hub.account_stream("main", _settings(simulator, venue))
    assert stream.account == "main"
    seen = Seen()
    task = asyncio.create_task(stream.run(seen))
    try:
        await wait_until(lambda: seen.states == [(True, "streaming")], 5, "the stream up")
        if venue.exchange == "bybit":
            await wait_until(
                lambda: simulator.private.subscribed(account) == {"position", "wallet"},
                3,
                "both topics",
            )
        await simulator.fill(account, symbol, 3)
        await wait_until(lambda: seen.events, 3, "an event for the fill")
        seen.events.clear()
        await simulator.transfer(account, "USDT", 10.0)
        await wait_until(lambda: "balance" in seen.events, 3, "an event for the transfer")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.close()


async def test_a_dropped_stream_is_down_then_reconnects_with_a_fresh_listen_key(
    simulator: SimulatorServer, hub: ExchangeHub
) -> None:
    stream = hub.account_stream("main", _settings(simulator, Venue.BINANCE_USDM))
    stream._reconnect = RetryPolicy(initial=timedelta(seconds=0.1), maximum=timedelta(seconds=0.2))
    seen = Seen()
    task = asyncio.create_task(stream.run(seen))
    try:
        await wait_until(lambda: seen.states == [(True, "streaming")], 5, "the stream up")
        key = stream._exchange.options["linear"]["listenKey"]
        assert len(key) >= 20
        # The key lapses (no keepalive for an hour): listenKeyExpired, the connection closes.
        await simulator.private.expire_listen_keys()
        await wait_until(lambda: len(seen.states) >= 3, 5, "down, then up again")
        up, reason = seen.states[1]
        assert not up
        assert key not in reason
        assert seen.states[2] == (True, "streaming")
        await simulator.fill("binance-oneway", "ETHUSDT", 2)
        await wait_until(lambda: seen.events, 3, "an event on the new key")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.close()


def test_listen_keys_are_cut_out_of_texts() -> None:
    key = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
    text = f"closed: ws://h/private/ws?listenKey={key} and ws://h/ws/{key}"
    assert key not in redact(text)
    assert redact("short abc", ("abc",)) == "short ***"


async def test_a_refused_key_is_down_without_the_key_in_the_reason(
    simulator: SimulatorServer, hub: ExchangeHub
) -> None:
    settings = _settings(simulator, Venue.BYBIT_LINEAR).model_copy(
        update={"api_secret": SecretStr("wrong-secret")}
    )
    stream = hub.account_stream("main", settings)
    seen = Seen()
    task = asyncio.create_task(stream.run(seen))
    try:
        await wait_until(lambda: seen.states, 5, "the stream down")
        up, reason = seen.states[0]
        assert not up
        assert "rejected the API key" in reason
        assert simulator.accounts["bybit-cross"].api_key not in reason
        assert "wrong-secret" not in reason
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.close()


async def test_the_listen_key_is_kept_alive(simulator: SimulatorServer, hub: ExchangeHub) -> None:
    stream = hub.account_stream("main", _settings(simulator, Venue.BINANCE_USDM))
    # Every 30 minutes in production (the venue drops a key 60 minutes after its last PUT);
    # ccxt.pro's own renewal happens once, 20 minutes in, and is not rescheduled.
    stream._keepalive = 0.2
    seen = Seen()
    task = asyncio.create_task(stream.run(seen))
    try:
        await wait_until(lambda: simulator.private.keepalives >= 3, 5, "three keepalives")
        assert seen.states == [(True, "streaming")]
        # A key the venue no longer knows: the PUT fails, the session ends and a new key is
        # asked for.
        await simulator.private.expire_listen_keys()
        await wait_until(
            lambda: seen.states[-1] == (True, "streaming") and len(seen.states) >= 3,
            5,
            "back on a new key",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.close()


def _order_requests(sim: SimulatorServer) -> int:
    """Binance open-order requests (both services) the simulator has answered so far."""
    return sum(1 for r in sim.request_log if r.path.endswith(("/openOrders", "/openAlgoOrders")))


async def test_open_orders_are_asked_again_only_after_an_order_event_a_gap_or_a_while(
    simulator: SimulatorServer, hub: ExchangeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Binance reconciliation's open-order requests (two per held symbol) are skipped while
    the user-data stream stays up and reports nothing; a new stop reported on it, a dropped
    stream, or ORDERS_REREAD_SECONDS make the next fetch ask again, and it sees the new stop."""
    settings = _settings(simulator, Venue.BINANCE_USDM)
    client = hub.client_for("main", settings)
    stream = hub.account_stream("main", settings)
    stream._reconnect = RetryPolicy(initial=timedelta(seconds=0.1), maximum=timedelta(seconds=0.2))
    seen = Seen()
    try:
        # No stream yet: every fetch asks.
        first = await client.fetch_account()
        per_fetch = 2 * len({p.symbol for p in first.positions})
        assert per_fetch
        assert _order_requests(simulator) == per_fetch
        await client.fetch_account()
        assert _order_requests(simulator) == 2 * per_fetch

        task = asyncio.create_task(stream.run(seen))
        await wait_until(lambda: seen.states == [(True, "streaming")], 5, "the stream up")
        kept = await client.fetch_account()  # read while the stream is up
        assert _order_requests(simulator) == 3 * per_fetch
        again = await client.fetch_account()
        assert _order_requests(simulator) == 3 * per_fetch, "nothing reported: answers kept"
        assert again.protective_orders == kept.protective_orders

        # A stop placed: Binance's ALGO_UPDATE arrives, and the next fetch sees the stop.
        symbol = sorted(p.symbol for p in first.positions)[0]
        stop = OrderSpec(symbol, "sell", "stop", 1_000.0, None, True, None, "algo")
        await simulator.place_order("binance-oneway", stop)
        await wait_until(lambda: "orders" in seen.events, 3, "the ALGO_UPDATE as an event")
        placed = await client.fetch_account()
        assert _order_requests(simulator) == 4 * per_fetch
        orders = placed.protective_orders or ()
        assert len(orders) == len(kept.protective_orders or ()) + 1
        assert any(o.symbol == symbol and o.trigger_price == 1_000.0 for o in orders)
        await client.fetch_account()
        assert _order_requests(simulator) == 4 * per_fetch

        # The stream drops: while it is down, and once after it is back, every fetch asks.
        await simulator.private.set_mode("off")
        await wait_until(lambda: len(seen.states) >= 2, 5, "the stream down")
        await client.fetch_account()
        await client.fetch_account()
        assert _order_requests(simulator) == 6 * per_fetch
        await simulator.private.set_mode("on")
        await wait_until(lambda: len(seen.states) >= 3, 5, "the stream up again")
        await client.fetch_account()
        assert _order_requests(simulator) == 7 * per_fetch
        await client.fetch_account()
        assert _order_requests(simulator) == 7 * per_fetch

        # Kept answers age out.
        monkeypatch.setattr("monitor.exchanges.stops.ORDERS_REREAD_SECONDS", 0.2)
        await asyncio.sleep(0.3)
        await client.fetch_account()
        assert _order_requests(simulator) == 8 * per_fetch
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await stream.close()
        await client.close()
