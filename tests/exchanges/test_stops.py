"""Protective stops read from both venues: real ccxt against the simulator's order services, and
the venues' documented response examples replayed as they are."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config.alerts import AlertsSettings, account_rules
from monitor.domain.margin import assess
from monitor.domain.model import AccountState, Side, Venue
from monitor.domain.stops import OrderKind, OrderSide
from monitor.exchanges import ExchangeHub, VenueClient
from monitor.exchanges.stops import OrderNotes, binance_orders, bybit_orders
from monitor.ports import SystemClock
from monitor.service import PollService, WatchedAccount
from monitor.simulator.server import SimulatorServer
from monitor.storage import queries
from monitor.storage.migrate import prepare_database
from tests.exchanges.cli_support import cli, write_config
from tests.exchanges.conftest import TEST_RETRY
from tests.support.simulator import account_settings, running_simulator

TIERS = [{"cap": 5_000_000, "mmr": "0.4%", "max_leverage": 100}]


def _long(symbol: str, quantity: float, entry: float, **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol, "side": "long", "quantity": quantity, "entry_price": entry, **extra}


def _short(symbol: str, quantity: float, entry: float, **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol, "side": "short", "quantity": quantity, "entry_price": entry, **extra}


SCENARIO: dict[str, Any] = {
    "name": "stops",
    "seed": 5,
    "feeds": {"BTC": {"price": 60_000}, "ETH": {"price": 3_000}},
    "instruments": [
        *(
            {"venue": venue, "symbol": symbol, "tiers": TIERS, "tick_size": "0.01"}
            for venue in ("binance-usdm", "bybit-linear")
            for symbol in ("BTCUSDT", "ETHUSDT")
        ),
        {
            "venue": "binance-coinm",
            "symbol": "BTCUSD_PERP",
            "tiers": [{"cap": 50, "mmr": "0.4%", "max_leverage": 125}],
            "qty_step": "1",
        },
    ],
    "accounts": {
        # BTC's dynamic liquidation price is about 40 300 while ETH holds; ETH at 2 500 takes
        # 10 000 from the pool and lifts it above the stop at 50 000.
        "bn": {
            "exchange": "binance",
            "wallet": {"USDT": 20_000},
            "positions": [_long("BTCUSDT", 1, 60_000), _long("ETHUSDT", 20, 3_000)],
            "orders": [
                {"symbol": "BTCUSDT", "side": "sell", "type": "stop", "trigger_price": 50_000},
                # Decoys: a take-profit, and a stop entry that would open a short.
                {
                    "symbol": "BTCUSDT",
                    "side": "sell",
                    "type": "take_profit",
                    "trigger_price": 70_000,
                },
                {
                    "symbol": "ETHUSDT",
                    "side": "sell",
                    "type": "stop",
                    "trigger_price": 2_900,
                    "quantity": 20,
                    "reduce_only": False,
                    "service": "classic",
                },
                {
                    "symbol": "ETHUSDT",
                    "side": "sell",
                    "type": "stop_limit",
                    "trigger_price": 2_400,
                    "quantity": 10,
                    "service": "classic",
                },
                # Trailing 1 % below the highest price since placing: at least 2 970 now.
                {
                    "symbol": "ETHUSDT",
                    "side": "sell",
                    "type": "trailing_stop",
                    "quantity": 5,
                    "callback_rate": 1,
                },
            ],
        },
        "bn-hedge": {
            "exchange": "binance",
            "position_mode": "hedge",
            "wallet": {"USDT": 20_000},
            "positions": [
                _long("BTCUSDT", 2, 60_000),
                _short("BTCUSDT", 1, 61_000),
                _long("ETHUSDT", 5, 3_000, margin_mode="isolated"),
            ],
            "orders": [
                {
                    "symbol": "BTCUSDT",
                    "side": "sell",
                    "type": "stop",
                    "trigger_price": 55_000,
                    "quantity": 2,
                    "position_side": "long",
                    "reduce_only": False,
                    "service": "classic",
                },
                {
                    "symbol": "BTCUSDT",
                    "side": "buy",
                    "type": "stop",
                    "trigger_price": 65_000,
                    "position_side": "short",
                },
                # A buy stop on the LONG leg adds to it: no protection for either leg.
                {
                    "symbol": "BTCUSDT",
                    "side": "buy",
                    "type": "stop",
                    "trigger_price": 62_000,
                    "quantity": 1,
                    "position_side": "long",
                    "reduce_only": False,
                },
            ],
        },
        # Portfolio Margin: papi's algo service and its older conditional-order book.
        "bn-portfolio": {
            "exchange": "binance",
            "account_mode": "portfolio",
            "wallet": {"USDT": 20_000},
            "positions": [_long("BTCUSDT", 1, 60_000), _short("ETHUSDT", 10, 3_000)],
            "orders": [
                {"symbol": "BTCUSDT", "side": "sell", "type": "stop", "trigger_price": 50_000},
                {
                    "symbol": "ETHUSDT",
                    "side": "buy",
                    "type": "stop",
                    "trigger_price": 3_300,
                    "quantity": 4,
                    "service": "classic",
                },
            ],
        },
        # COIN-M: 600 contracts of 100 USD short, a close-position stop in the classic book.
        "bn-coin": {
            "exchange": "binance",
            "wallet": {"BTC": 1},
            "positions": [_short("BTCUSD_PERP", 600, 60_000)],
            "orders": [
                {
                    "symbol": "BTCUSD_PERP",
                    "side": "buy",
                    "type": "stop",
                    "trigger_price": 66_000,
                    "service": "classic",
                }
            ],
        },
        "by": {
            "exchange": "bybit",
            "wallet": {"USDT": 20_000},
            "positions": [_long("BTCUSDT", 1, 60_000), _short("ETHUSDT", 20, 3_000)],
            "orders": [
                {
                    "symbol": "BTCUSDT",
                    "side": "sell",
                    "type": "stop",
                    "trigger_price": 50_000,
                    "service": "position",
                },
                {
                    "symbol": "BTCUSDT",
                    "side": "sell",
                    "type": "take_profit",
                    "trigger_price": 70_000,
                    "service": "position",
                },
                {
                    "symbol": "ETHUSDT",
                    "side": "buy",
                    "type": "stop",
                    "trigger_price": 3_600,
                    "quantity": 10,
                    "service": "position",
                },
                {
                    "symbol": "ETHUSDT",
                    "side": "buy",
                    "type": "stop",
                    "trigger_price": 3_300,
                    "quantity": 20,
                    "reduce_only": False,
                    "service": "conditional",
                },
            ],
        },
        "by-hedge": {
            "exchange": "bybit",
            "position_mode": "hedge",
            "wallet": {"USDT": 20_000},
            "positions": [_long("BTCUSDT", 1, 60_000), _short("BTCUSDT", 0.5, 61_000)],
            "orders": [
                {
                    "symbol": "BTCUSDT",
                    "side": "sell",
                    "type": "stop",
                    "trigger_price": 50_000,
                    "position_side": "long",
                    "service": "position",
                },
                {
                    "symbol": "BTCUSDT",
                    "side": "buy",
                    "type": "stop",
                    "trigger_price": 66_000,
                    "quantity": 0.5,
                    "position_side": "short",
                    "service": "conditional",
                },
                # Bybit trails a whole position, 500 above the lowest price since: 60 500 now.
                {
                    "symbol": "BTCUSDT",
                    "side": "buy",
                    "type": "trailing_stop",
                    "distance": 500,
                    "position_side": "short",
                    "service": "conditional",
                },
            ],
        },
    },
}


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with running_simulator(SCENARIO) as server:
        yield server


def _client(
    sim: SimulatorServer, account: str, hub: ExchangeHub, venue: Venue | None = None
) -> VenueClient:
    settings = account_settings(sim, account, venue)
    return hub.client_for(account, settings)


async def _fetch(sim: SimulatorServer, account: str, hub: ExchangeHub) -> AccountState:
    return await _client(sim, account, hub).fetch_account()


def _statuses(state: AccountState) -> dict[tuple[str, Side], str]:
    risk = assess(state)
    return {
        (position.symbol, position.side): stop.status.value
        for position, stop in zip(state.positions, risk.stops, strict=True)
    }


@pytest.fixture
async def hub() -> AsyncIterator[ExchangeHub]:
    async with ExchangeHub(retry=TEST_RETRY, timeout=1.0, rate_limit=False) as exchange_hub:
        yield exchange_hub


@pytest.mark.parametrize("account", ["bn", "by"])
async def test_a_stop_ends_beyond_liquidation_when_the_other_position_loses(
    sim: SimulatorServer, hub: ExchangeHub, account: str
) -> None:
    state = await _fetch(sim, account, hub)
    eth_side = Side.LONG if account == "bn" else Side.SHORT
    assert _statuses(state) == {("BTCUSDT", Side.LONG): "ok", ("ETHUSDT", eth_side): "partial"}
    btc = assess(state).stops[[p.symbol for p in state.positions].index("BTCUSDT")]
    assert btc.stop_price == pytest.approx(50_000)
    assert btc.quantity_covered == 1.0
    assert btc.loss_at_stop == pytest.approx(-10_000)
    # Only ETH moves (against the position); BTC's mark and stop stay where they were.
    sim.set_price("ETH", 2_500 if account == "bn" else 3_500)
    moved = await _fetch(sim, account, hub)
    assert {p.mark_price for p in moved.positions if p.symbol == "BTCUSDT"} == {60_000}
    statuses = _statuses(moved)
    assert statuses[("BTCUSDT", Side.LONG)] == "beyond_liquidation"
    risk = assess(moved)
    index = [p.symbol for p in moved.positions].index("BTCUSDT")
    liquidation = risk.positions[index].liquidation_price
    assert liquidation is not None
    assert liquidation >= 50_000


async def test_partial_coverage_counts_trailing_stops_and_ignores_decoys(
    sim: SimulatorServer, hub: ExchangeHub
) -> None:
    binance = await _fetch(sim, "bn", hub)
    bybit = await _fetch(sim, "by", hub)
    hedged = await _fetch(sim, "by-hedge", hub)
    short = [p.side for p in hedged.positions].index(Side.SHORT)
    # Bybit's trailing stop covers the whole short leg, 500 above the mark at the most.
    assert assess(hedged).stops[short].stop_price == pytest.approx(60_500)
    assert any("trailing stop on BTCUSDT" in text for text in hedged.assumptions)
    for state, first, covered in ((binance, 2_970.0, 15 / 20), (bybit, 3_600.0, 10 / 20)):
        eth = [p.symbol for p in state.positions].index("ETHUSDT")
        stop = assess(state).stops[eth]
        assert stop.status.value == "partial"
        assert stop.quantity_covered == pytest.approx(covered)
        # The stop that triggers first (Binance: the trailing one, estimated cautiously).
        assert stop.stop_price == pytest.approx(first)
        orders = state.protective_orders or ()
        assert any(order.kind is OrderKind.TAKE_PROFIT for order in orders)
        assert any(not order.reduce_only for order in orders)


@pytest.mark.parametrize("account", ["bn-hedge", "by-hedge"])
async def test_hedge_legs_are_matched_by_position_side(
    sim: SimulatorServer, hub: ExchangeHub, account: str
) -> None:
    state = await _fetch(sim, account, hub)
    statuses = _statuses(state)
    assert statuses[("BTCUSDT", Side.LONG)] == "ok"
    assert statuses[("BTCUSDT", Side.SHORT)] == "ok"
    if account == "bn-hedge":
        assert statuses[("ETHUSDT", Side.LONG)] == "none"


@pytest.mark.parametrize(
    ("account", "path"),
    [("bn", "/fapi/v1/openAlgoOrders"), ("by", "/v5/order/realtime")],
)
async def test_a_refused_order_endpoint_leaves_stops_unknown_with_one_warning(
    sim: SimulatorServer,
    hub: ExchangeHub,
    caplog: pytest.LogCaptureFixture,
    account: str,
    path: str,
) -> None:
    sim.inject_fault("server_error", path=path, status=503)
    client = _client(sim, account, hub)
    with caplog.at_level(logging.WARNING):
        first = await client.fetch_account()
        second = await client.fetch_account()
    for state in (first, second):
        assert state.positions, "the account is still watched"
        assert set(_statuses(state).values()) == {"unknown"}
        assert any(text.startswith("stop status unknown") for text in state.assumptions)
    warned = [r for r in caplog.records if "stop status unknown" in r.getMessage()]
    assert len(warned) == 1
    sim.clear_faults()
    assert "unknown" not in _statuses(await client.fetch_account()).values()


# Binance, "Query Current Open Order" (USDⓈ-M, GET /fapi/v1/openOrder) response example.
BINANCE_TRAILING_EXAMPLE = {
    "avgPrice": "0.00000",
    "clientOrderId": "abc",
    "cumQuote": "0",
    "executedQty": "0",
    "orderId": 1917641,
    "origQty": "0.40",
    "origType": "TRAILING_STOP_MARKET",
    "price": "0",
    "reduceOnly": False,
    "side": "BUY",
    "positionSide": "SHORT",
    "status": "NEW",
    "stopPrice": "9300",
    "closePosition": False,
    "symbol": "BTCUSDT",
    "time": 1579276756075,
    "timeInForce": "GTC",
    "type": "TRAILING_STOP_MARKET",
    "activatePrice": "9020",
    "priceRate": "0.3",
    "updateTime": 1579276756075,
    "workingType": "CONTRACT_PRICE",
    "priceProtect": False,
    "priceMatch": "NONE",
    "selfTradePreventionMode": "NONE",
    "goodTillDate": 0,
}

# Bybit v5 docs, "Get Open & Closed Orders" response example: a hedge-mode limit buy carrying
# TP/SL for the position it would open. It rests on the book; it protects nothing yet.
BYBIT_EXAMPLE = {
    "orderId": "fd4300ae-7847-404e-b947-b46980a4d140",
    "orderLinkId": "test-000005",
    "blockTradeId": "",
    "symbol": "ETHUSDT",
    "price": "1600.00",
    "qty": "0.10",
    "side": "Buy",
    "isLeverage": "",
    "positionIdx": 1,
    "orderStatus": "New",
    "cancelType": "UNKNOWN",
    "rejectReason": "EC_NoError",
    "avgPrice": "0",
    "leavesQty": "0.10",
    "leavesValue": "160",
    "cumExecQty": "0.00",
    "cumExecValue": "0",
    "cumExecFee": "0",
    "timeInForce": "GTC",
    "orderType": "Limit",
    "stopOrderType": "UNKNOWN",
    "orderIv": "",
    "triggerPrice": "0.00",
    "takeProfit": "2500.00",
    "stopLoss": "1500.00",
    "tpTriggerBy": "LastPrice",
    "slTriggerBy": "LastPrice",
    "triggerDirection": 0,
    "triggerBy": "UNKNOWN",
    "lastPriceOnCreated": "",
    "reduceOnly": False,
    "closeOnTrigger": False,
    "smpType": "None",
    "smpGroup": 0,
    "smpOrderId": "",
    "tpslMode": "Full",
    "tpLimitPrice": "",
    "slLimitPrice": "",
    "placeType": "",
    "createdTime": "1684738540559",
    "updatedTime": "1684738540561",
}


def test_binances_documented_trailing_stop_counts_once_activated() -> None:
    # The mark reached the activation price 9020: the buy stop trails 0.3 % above the lowest
    # price since, at most 9000 x 1.003 (the documented stopPrice 9300 is to be ignored).
    notes = OrderNotes()
    (order,) = binance_orders(
        [BINANCE_TRAILING_EXAMPLE], "openOrders", {"BTCUSDT": 9_000}, notes, "w"
    )
    assert order.kind is OrderKind.TRAILING_STOP
    assert order.side is OrderSide.BUY
    assert order.position_side is Side.SHORT
    assert order.trigger_price == pytest.approx(9_027.0)
    assert order.quantity == pytest.approx(0.40)
    (sentence,) = notes.sentences()
    assert "cautious" in sentence
    # Above the activation price it has not started trailing: not protection, and said so.
    notes = OrderNotes()
    assert (
        binance_orders([BINANCE_TRAILING_EXAMPLE], "openOrders", {"BTCUSDT": 9_100}, notes, "w")
        == []
    )
    assert "not counted" in notes.sentences()[0]


def test_bybits_documented_open_order_is_no_protection() -> None:
    assert bybit_orders([BYBIT_EXAMPLE], {"ETHUSDT": 1_550.0}, {}, OrderNotes(), "w") == []


async def test_show_prints_each_positions_stop_in_table_and_json(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    config = write_config(sim, tmp_path / "config.toml", [("main", "bn", "binance-usdm", "USDT")])
    code, out, err = await cli("show", "--config", str(config), "--format", "json")
    assert code == 0, err
    positions = {p["symbol"]: p for p in json.loads(out)[0]["risk"]["positions"]}
    assert positions["BTCUSDT"]["stop_status"] == "ok"
    assert positions["BTCUSDT"]["stop_price"] == 50_000
    assert positions["ETHUSDT"]["stop_status"] == "partial"
    assert positions["ETHUSDT"]["stop_quantity_covered"] == pytest.approx(0.75)
    code, out, err = await cli("show", "--config", str(config), "--format", "table")
    assert code == 0, err
    assert "Protective stops" in out
    assert "partial" in out
    assert "assumed: trailing stop on ETHUSDT counted at a cautious trigger" in out


async def test_the_demo_shows_a_stop_ending_beyond_its_dynamic_liquidation_price(
    hub: ExchangeHub,
) -> None:
    # The built-in demo: BTC, ETH and SOL slide 2.6 % from second 5 to 20. The SOL short gains,
    # but the BTC and ETH longs lose more, and SOL's stop at 160 ends beyond its liquidation price.
    async with running_simulator("demo") as demo:
        client = _client(demo, "demo-binance", hub)
        before = await client.fetch_account()
        demo.advance(25)
        trough = await client.fetch_account()
        demo.advance(35)
        after = await client.fetch_account()
    sol = [p.symbol for p in before.positions].index("SOLUSDT")
    assert [assess(s).stops[sol].status.value for s in (before, trough, after)] == [
        "ok",
        "beyond_liquidation",
        "ok",
    ]
    assert trough.positions[sol].mark_price < before.positions[sol].mark_price


async def test_portfolio_margin_and_coin_margined_stops_are_read(
    sim: SimulatorServer, hub: ExchangeHub
) -> None:
    portfolio = await _fetch(sim, "bn-portfolio", hub)
    assert _statuses(portfolio) == {
        ("BTCUSDT", Side.LONG): "ok",
        ("ETHUSDT", Side.SHORT): "partial",
    }
    assert {order.source for order in portfolio.protective_orders or ()} == {
        "algo",
        "conditional",
    }
    coin = await _client(sim, "bn-coin", hub, Venue.BINANCE_COINM).fetch_account()
    stop = assess(coin).stops[0]
    assert stop.status.value == "ok"
    # 600 x 100 USD short from 60 000 stopped at 66 000: 60 000 x (1/60 000 - 1/66 000) BTC lost.
    assert stop.loss_at_stop == pytest.approx(-60_000 * (1 / 60_000 - 1 / 66_000), rel=1e-9)


async def test_the_poll_cycle_stores_stops_and_fires_stop_loss_when_the_other_position_loses(
    sim: SimulatorServer, hub: ExchangeHub, tmp_path: Path
) -> None:
    store = await prepare_database(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        await store.register_account(
            "main", venue="binance-usdm", asset="USDT", poll_interval=1.0, now=datetime.now(UTC)
        )
        # The margin rules are left as they are: the stop-loss rule alone is judged here.
        alerts = AlertsSettings.model_validate({"stop_loss": {"enabled": True}})
        rules = account_rules(alerts, None, "main")
        service = PollService(store, SystemClock(), ["console"])
        await service.watch(
            WatchedAccount("main", _client(sim, "bn", hub), rules, timedelta(seconds=1))
        )
        calm = await service.poll("main")
        sim.set_price("ETH", 2_500)
        moved = await service.poll("main")
        stored = await queries.latest_snapshot(store, "main")
    finally:
        await store.close()
    assert calm.error_kind is None, calm.error
    assert [n for n in calm.notifications if n.rule == "stop_loss"] == []
    [alert] = [n for n in moved.notifications if n.rule == "stop_loss"]
    assert alert.severity.value == "critical"
    assert "BTCUSDT long: stop 50,000 lies beyond its liquidation price" in alert.text
    assert stored is not None
    assert {p.symbol: p.stop_status for p in stored.positions} == {
        "BTCUSDT": "beyond_liquidation",
        "ETHUSDT": "partial",
    }
