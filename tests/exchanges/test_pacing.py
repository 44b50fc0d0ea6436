"""Pacing and the shared HTTP session: many accounts cost the event loop one wake-up per waiting
request (not one per millisecond), Binance's weight per minute holds, and one connection pool
serves every key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from ccxt.async_support.base.throttler import Throttler

from monitor.domain.model import Venue
from monitor.exchanges.base import BinanceUsdm, Bybit
from monitor.exchanges.hub import ExchangeHub
from monitor.exchanges.pacing import Pacer, PacerChain
from monitor.simulator.server import SimulatorServer
from tests.exchanges.conftest import ClientFactory
from tests.support.simulator import account_settings


class _CountingLoop(asyncio.SelectorEventLoop):
    """Counts the timers scheduled: every `asyncio.sleep(d > 0)` is one, so one per wake-up of
    a waiting request."""

    timers = 0

    def call_at(
        self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> Any:
        self.timers += 1
        return super().call_at(when, callback, *args, context=context)


def _pace(make: Callable[[], Any], costs: list[float]) -> tuple[int, float]:
    """Run one request per cost through a fresh throttle at once: (timers scheduled, seconds)."""
    with asyncio.Runner(loop_factory=_CountingLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, _CountingLoop)

        async def main() -> float:
            throttle = make()
            started = time.monotonic()
            await asyncio.gather(*(throttle(cost) for cost in costs))
            return time.monotonic() - started

        loop.timers = 0
        elapsed = runner.run(main())
        return loop.timers, elapsed


def test_waiting_requests_sleep_once_each_instead_of_every_millisecond() -> None:
    # 20 requests of weight 5 at 400 units per second: about a quarter of a second of queueing.
    costs = [5.0] * 20
    ours, ours_elapsed = _pace(lambda: Pacer(400.0), costs)
    spin, spin_elapsed = _pace(
        lambda: Throttler({"refillRate": 0.4, "capacity": 1, "delay": 0.001}), costs
    )
    # One timer per request that had to wait (the first goes at once).
    assert ours <= len(costs)
    # ccxt's throttler re-checks its bucket every millisecond for as long as anyone waits.
    assert spin > 10 * ours
    # Both deliver the same pace: the last starts once the 95 units before it, less the burst
    # of one, have drained at 400 per second.
    assert ours_elapsed == pytest.approx(94 / 400, abs=0.06)
    assert spin_elapsed == pytest.approx(94 / 400, abs=0.1)


def test_binance_instances_pace_at_binances_weights_with_one_sleep_each() -> None:
    async def weights() -> float:
        exchange = BinanceUsdm({})
        # v3 account and positionRisk weigh 5 each on Binance (ccxt says 1).
        cost = exchange.calculate_rate_limiter_cost(["fapiPrivateV3"], "GET", "account", {})
        assert cost == 5
        started = time.monotonic()
        await asyncio.gather(*(exchange.throttle(cost) for _ in range(5)))
        return time.monotonic() - started

    with asyncio.Runner(loop_factory=_CountingLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, _CountingLoop)
        elapsed = runner.run(weights())
        # 2400 weight per minute is 40 per second: the fifth starts once the first four's 20
        # units, less the one-unit burst, have drained.
        assert elapsed == pytest.approx(19 / 40, abs=0.1)
        assert loop.timers <= 5


def test_a_minute_of_requests_stays_within_the_weight_limit() -> None:
    now = [0.0]
    pacer = Pacer(2400 / 60, clock=lambda: now[0])
    granted: list[float] = []
    # Far more demand than the limit: every millisecond, as many weight-5 requests as it lets go.
    for step in range(180_000):
        now[0] = step / 1000
        while pacer.try_take(5):
            granted.append(now[0])
    for window_start in (0.0, 17.3, 60.0, 120.0):
        used = 5 * sum(1 for start in granted if window_start <= start < window_start + 60)
        # Beyond the rate, the bucket lends only its one-unit burst and the last request of the
        # window, which starts inside it (as ccxt's does).
        assert 2390 <= used <= 2400 + 1 + 5


def test_an_idle_pacer_lets_a_request_through_at_once() -> None:
    now = [100.0]
    pacer = Pacer(10.0, clock=lambda: now[0])
    # A full bucket (one unit) and the rule "go while the bucket is not negative": as ccxt's.
    assert pacer.try_take(1)
    assert pacer.try_take(1)
    assert not pacer.try_take(1)
    now[0] += 0.1
    assert pacer.try_take(1)
    now[0] += 60
    assert pacer.try_take(3)
    # 3 units with a burst of 1: the bucket is back at 0 two tenths of a second later.
    now[0] += 0.19
    assert not pacer.try_take(1)
    now[0] += 0.01
    assert pacer.try_take(1)


async def test_a_request_cancelled_while_waiting_takes_nothing_from_the_budget() -> None:
    pacer = Pacer(40.0)  # Binance: 2,400 weight a minute
    await pacer(1)  # the burst: the bucket is now at 0
    queued = [asyncio.ensure_future(pacer(5)) for _ in range(8)]
    await asyncio.sleep(0.01)  # every request takes its place in the queue and waits
    # Polls that hit their deadline give up their place: 35 units that would have taken 0.9 s.
    for request in queued[1:]:
        request.cancel()
    started = time.monotonic()
    await queued[0]
    await pacer(5)
    # The first waiter's 5 units (0.125 s) then the new request at once, not after the cancelled.
    assert time.monotonic() - started == pytest.approx(0.125, abs=0.08)


async def test_accounts_share_one_session_and_pacing_per_address(
    sim: SimulatorServer, hub: ExchangeHub, client_for: ClientFactory
) -> None:
    first, second = client_for("bn-oneway"), client_for("bn-hedge")
    bybit = client_for("by-empty")
    assert first.exchange is not second.exchange
    assert first.exchange.session is second.exchange.session is bybit.exchange.session
    assert first.exchange.ssl_context is second.exchange.ssl_context
    # Binance counts weight per address across keys: one pacer; Bybit adds its per-IP cap.
    assert first.exchange.throttler is second.exchange.throttler
    assert isinstance(first.exchange.throttler, Pacer)
    assert isinstance(bybit.exchange.throttler, PacerChain)
    assert isinstance(Bybit({}).throttler, Pacer)
    session = first.exchange.session
    await first.fetch_account()
    # Closing one account's instance leaves the shared session to the others.
    await first.close()
    assert not session.closed
    assert (await second.fetch_account()).positions
    await hub.aclose()
    assert session.closed


async def test_without_sharing_each_instance_opens_its_own_session(
    sim: SimulatorServer,
) -> None:
    async with ExchangeHub(rate_limit=False, share_session=False) as hub:
        clients = [
            hub.client_for(
                name,
                account_settings(sim, name, Venue.BINANCE_USDM),
            )
            for name in ("bn-oneway", "bn-hedge")
        ]
        for client in clients:
            await client.fetch_account()
        assert clients[0].exchange.session is not clients[1].exchange.session


async def test_bybit_accounts_behind_one_address_share_its_per_ip_pace(
    sim: SimulatorServer, hub: ExchangeHub, client_for: ClientFactory
) -> None:
    linear, other = client_for("by-empty"), client_for("by-empty", api_key="another-key")
    assert linear.exchange is not other.exchange
    # Each key keeps its own bucket (Bybit's private limits are per account)...
    assert linear.exchange.throttler.own is not other.exchange.throttler.own
    # ...and all of them share the address's 600 requests per 5 s.
    assert linear.exchange.throttler.address is other.exchange.throttler.address
    assert linear.exchange.throttler.address.per_second == pytest.approx(120)
