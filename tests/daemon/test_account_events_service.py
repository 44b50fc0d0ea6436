"""Account events in-process with real parts: ccxt.pro over loopback to the simulator's
user-data stream, the poll service with an SQLite store. A burst of fills costs at most one
extra REST fetch per second; a private stream that cannot connect leaves the account live on
its marks and fetched at its cadence."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from monitor.config import AccountSettings
from monitor.domain.model import Venue
from monitor.exchanges import ExchangeHub
from monitor.live import LIVE, LiveMarks
from monitor.ports import SystemClock
from monitor.service import PollService
from monitor.simulator.server import SimulatorServer
from monitor.storage.repository import SqlStore
from tests.daemon.test_live_service import INTERVAL, LiveRecorder, _follow
from tests.support.simulator import account_settings
from tests.support.waiting import wait_until


def _settings(sim: SimulatorServer, name: str) -> AccountSettings:
    return account_settings(sim, name, Venue.BINANCE_USDM, poll_interval=INTERVAL)


def _refreshes(recorder: LiveRecorder) -> int:
    return sum(1 for r in recorder.reports if not r.live and not r.by_clock)


async def test_a_burst_of_fills_costs_at_most_one_extra_fetch_a_second(
    sim: SimulatorServer, store: SqlStore, hub: ExchangeHub
) -> None:
    recorder = LiveRecorder()
    service = PollService(store, SystemClock(), ["log"], [recorder])
    live = LiveMarks(
        service, SystemClock(), reconcile=timedelta(seconds=60), stale_after=timedelta(seconds=3)
    )
    service.observe(live)
    service.set_stream_health(live.account_health)
    try:
        await _follow(service, live, store, hub, sim, "main")
        live.attach_events("main", lambda: hub.account_stream("main", _settings(sim, "main")))
        await wait_until(lambda: sim.private.connections == 1, 10, "the user-data stream")
        await wait_until(lambda: live.account_health("main") == LIVE, 10, "live marks")
        recorder.reports.clear()
        for quantity in (4.0, 3.0, 2.0, 1.0, 0.5):
            await sim.fill("main", "ETHUSDT", quantity)
            await asyncio.sleep(0.1)
        await wait_until(lambda: _refreshes(recorder) >= 1, 3, "a refresh")
        await asyncio.sleep(1.5)
        # Ten events (order + account update per fill) within half a second: one fetch at
        # once, one a second later with what came meanwhile.
        assert 1 <= _refreshes(recorder) <= 2
        last = [r for r in recorder.reports if not r.live][-1]
        assert last.snapshot is not None
        eth = [p for p in last.snapshot.state.positions if p.symbol == "ETHUSDT"]
        assert [float(p.quantity) for p in eth] == [0.5]
    finally:
        await live.close()
        await service.close()


async def test_a_private_stream_that_cannot_connect_does_not_blind_the_account(
    sim: SimulatorServer, store: SqlStore, hub: ExchangeHub
) -> None:
    recorder = LiveRecorder()
    service = PollService(store, SystemClock(), ["log"], [recorder])
    live = LiveMarks(
        service, SystemClock(), reconcile=timedelta(seconds=60), stale_after=timedelta(seconds=3)
    )
    service.observe(live)
    service.set_stream_health(live.account_health)
    await sim.private.set_mode("off")
    try:
        await _follow(service, live, store, hub, sim, "main")
        live.attach_events("main", lambda: hub.account_stream("main", _settings(sim, "main")))
        await wait_until(
            lambda: live.account_health("main") == "live (account events: down)",
            10,
            "the marks live, the events down",
        )
        # REST keeps the reconciliation cadence (marks live), and live recomputes go on.
        assert not live.rest_due("main")
        recorder.reports.clear()
        sim.set_price("BTC", 55_000.0)
        await wait_until(lambda: recorder.live("main"), 5, "a recompute at the new mark")
        await sim.private.set_mode("on")
        await wait_until(lambda: live.account_health("main") == LIVE, 10, "the events back")
    finally:
        await live.close()
        await service.close()
