"""A venue-wide pause is one alert: a 429 / 418 on one account bans the whole address, every
account there waits, and the trader gets one `venue_paused` alert (with the retry-after) and its
resolved notice, not a stale alert per account firing and resolving. Stale data the pause does not
explain still fires. The poll cycle in-process with real parts: ccxt against the simulator, the
alert rules, an SQLite store."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.config.alerts import AlertsSettings, account_rules
from monitor.domain.model import Venue
from monitor.domain.notification import Notification
from monitor.exchanges import ExchangeHub
from monitor.exchanges.resilience import FETCH_RETRY
from monitor.ports import SystemClock
from monitor.service import PollService, WatchedAccount
from monitor.simulator.server import SimulatorServer
from monitor.storage.repository import SqlStore
from tests.daemon.e2e_support import SCENARIO
from tests.support.simulator import account_settings

INTERVAL = timedelta(seconds=1)
BAN_SECONDS = 3
ACCOUNTS = ("main", "spare", "third")


def _scenario() -> dict[str, Any]:
    scenario = copy.deepcopy(SCENARIO)
    scenario["accounts"]["third"] = copy.deepcopy(scenario["accounts"]["spare"])
    return scenario


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(_scenario(), port=0) as server:
        yield server


@pytest.fixture
async def hub() -> AsyncIterator[ExchangeHub]:
    # A fetch sits out bans of up to half a second; longer ones are a pause the cycle reports.
    policy = replace(
        FETCH_RETRY,
        attempts=1,
        initial=timedelta(seconds=0.05),
        max_wait=timedelta(seconds=0.5),
    )
    async with ExchangeHub(retry=policy, timeout=3) as opened:
        yield opened


async def _service(store: SqlStore, hub: ExchangeHub, sim: SimulatorServer) -> PollService:
    service = PollService(store, SystemClock(), ["console"])
    defaults = AlertsSettings.model_validate({"stale": {"after": 2}})
    for name in ACCOUNTS:
        settings = account_settings(sim, name, Venue.BINANCE_USDM, poll_interval=INTERVAL)
        await store.register_account(
            name, venue="binance-usdm", asset="USDT", poll_interval=1.0, now=datetime.now(UTC)
        )
        watched = WatchedAccount(
            name,
            hub.client_for(name, settings),
            account_rules(defaults, None, name),
            INTERVAL,
            venue_key=hub.venue_key(settings),
        )
        await service.watch(watched)
    return service


async def _rounds(service: PollService, count: int) -> list[dict[str, Any]]:
    """`count` poll rounds of every account, one per poll interval; per round, per account:
    (error kind, notifications)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    rounds = []
    for number in range(count):
        await asyncio.sleep(max(0.0, start + number - loop.time()))
        reports = await asyncio.gather(*(service.poll(name) for name in ACCOUNTS))
        rounds.append({r.account: (r.error_kind, r.notifications) for r in reports})
    return rounds


def _sent(rounds: list[dict[str, Any]], rule: str) -> list[tuple[str, str]]:
    notes: list[Notification] = [
        n for r in rounds for _, notes in r.values() for n in notes if n.rule == rule
    ]
    return [(n.account, n.kind.value) for n in notes]


@pytest.mark.parametrize("fault", ["rate_limit", "ip_ban"])
async def test_a_ban_on_one_account_is_one_venue_alert_and_no_stale_flapping(
    fault: str, sim: SimulatorServer, store: SqlStore, hub: ExchangeHub
) -> None:
    service = await _service(store, hub, sim)
    # "third" is broken on its own (its key gets 503s) before the ban: the ban explains only
    # part of its silence, so its stale alert fires and stays firing through the pause.
    sim.inject_fault("server_error", account="third", status=503)
    before = await _rounds(service, 3)
    assert _sent(before, "stale") == [("third", "firing")]
    assert all(r["main"][0] is None and r["spare"][0] is None for r in before)

    # The venue answers one request of "spare" with a 429 / 418: the address is banned.
    sim.inject_fault(fault, account="spare", count=1, retry_after=BAN_SECONDS)
    during = await _rounds(service, BAN_SECONDS + 2)
    kinds = [r["main"][0] for r in during]
    assert "paused" in kinds  # main was paused too, though its own key did nothing
    assert kinds[-1] is None  # and polls again once the window is over

    sim.clear_faults()
    after = await _rounds(service, 2)
    rounds = before + during + after
    # One alert for the venue and address, carried by the first account on it, and its end.
    assert _sent(rounds, "venue_paused") == [("main", "firing"), ("main", "resolved")]
    firing = next(
        n for r in rounds for _, notes in r.values() for n in notes if n.rule == "venue_paused"
    )
    assert "retry after" in firing.text
    assert "main, spare, third" in firing.text
    assert firing.facts["venue"] == f"binanceusdm@{sim.base_url}"
    assert 0.5 < float(firing.facts["retry_after"] or 0) <= BAN_SECONDS
    # No stale alert for the accounts the pause explains; the broken one fired once, held
    # through the pause and resolved when its key worked again: no flapping.
    assert _sent(rounds, "stale") == [("third", "firing"), ("third", "resolved")]
    assert [r[0] for r in after[-1].values()] == [None, None, None]
