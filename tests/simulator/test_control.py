"""The `/_sim/` control API drives a simulator in another process the way tests drive it in-process."""

from __future__ import annotations

from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import pytest

from monitor.simulator import SimulatorServer, SystemClock
from tests.support.simulator import ccxt_client, running_simulator


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as response:
        return response.status, await response.json()


async def test_faults_prices_clock_and_state(simulator: SimulatorServer) -> None:
    base = f"{simulator.base_url}/_sim"
    exchange = ccxt_client(simulator, "binance-fragile", "binanceusdm")
    async with aiohttp.ClientSession() as session:
        try:
            await exchange.load_markets()
            status, created = await _call(
                session, "POST", f"{base}/faults", {"kind": "maintenance", "count": 1}
            )
            assert status == 200
            with pytest.raises(ccxt_async.OnMaintenance):
                await exchange.fetch_balance()
            status, state = await _call(session, "GET", f"{base}/state")
            assert state["faults"] == [
                {"id": created["id"], "kind": "maintenance", "account": None, "hits": 1}
            ]
            assert (await _call(session, "DELETE", f"{base}/faults"))[0] == 200
            assert (await _call(session, "GET", f"{base}/state"))[1]["faults"] == []

            assert (await _call(session, "PUT", f"{base}/prices/BTC", {"price": 40000}))[0] == 200
            assert await exchange.fetch_positions() == []
            state = (await _call(session, "GET", f"{base}/state"))[1]
            fragile = [e for e in state["liquidations"] if e["account"] == "binance-fragile"]
            assert [(e["symbol"], e["mark_price"]) for e in fragile] == [("BTCUSDT", 40000)]
            assert (await _call(session, "PUT", f"{base}/prices/BTC", {"price": None}))[0] == 200

            status, moved = await _call(session, "POST", f"{base}/advance", {"seconds": 90})
            assert status == 200
            assert moved["now"].startswith("2026-01-01T00:01:30")
        finally:
            await exchange.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "error"),
    [
        ("POST", "faults", {"kind": "gremlins"}, "fault.kind"),
        ("POST", "faults", {"kind": "auth", "account": "nobody"}, "fault.account"),
        ("POST", "faults", {"kind": "auth", "colour": "red"}, "colour"),
        ("PUT", "prices/DOGE", {"price": 1}, "feed"),
        ("PUT", "prices/BTC", {"price": -1}, "price"),
        ("PUT", "prices/BTC", {"price": float("nan")}, "price"),
        ("PUT", "prices/BTC", {"price": float("inf")}, "price"),
        ("PUT", "prices/BTC", {"price": True}, "price"),
        ("POST", "advance", {"seconds": "soon"}, "seconds"),
        ("POST", "advance", {"seconds": float("inf")}, "seconds"),
    ],
)
async def test_bad_requests_name_the_field(
    simulator: SimulatorServer, method: str, path: str, body: Any, error: str
) -> None:
    async with aiohttp.ClientSession() as session:
        status, answer = await _call(session, method, f"{simulator.base_url}/_sim/{path}", body)
    assert status == 400
    assert error in answer["error"]


async def test_advancing_a_wall_clock_is_refused() -> None:
    async with (
        running_simulator("test", clock=SystemClock()) as sim,
        aiohttp.ClientSession() as session,
    ):
        status, answer = await _call(
            session, "POST", f"{sim.base_url}/_sim/advance", {"seconds": 1}
        )
    assert status == 409
    assert "ManualClock" in answer["error"]
