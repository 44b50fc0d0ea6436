"""Bybit Unified Trading Account pools: documented responses replayed through the adapter's
parsing, and real ccxt against the simulator's UTA, isolated and classic accounts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monitor.domain.errors import ExchangeAuthError, ExchangeDataError
from monitor.domain.margin import assess
from monitor.domain.model import (
    AccountState,
    CollateralTier,
    MarginMode,
    PoolModel,
    Position,
    Side,
    Tier,
    Venue,
)
from monitor.exchanges import ExchangeHub
from monitor.exchanges.bybit_account import bybit_account
from monitor.exchanges.bybit_collateral import (
    CollateralBook,
    collateral_switches,
    collateral_tiers,
)
from monitor.exchanges.bybit_pool import ReadPosition, unified_parts, unified_wallet
from monitor.simulator.server import SimulatorServer
from tests.exchanges.conftest import TEST_RETRY
from tests.support.simulator import account_settings, running_simulator

RECORDED = Path(__file__).parent / "recorded" / "bybit"


def _recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def _book() -> CollateralBook:
    book = CollateralBook(3600.0)
    book.update(
        collateral_tiers(_recorded("spot-margin-trade-collateral.json"), "tiers"),
        collateral_switches(_recorded("collateral-info.json"), "info"),
    )
    return book


def test_documented_account_info_is_a_uta_in_cross_margin() -> None:
    account = bybit_account(_recorded("account-info.json"), "info")
    assert (account.model, account.version, account.status) == (PoolModel.UNIFIED, 1, 4)
    assert not account.inverse_pooled


def test_a_classic_account_is_refused_as_a_key_problem() -> None:
    info = {"retCode": 0, "result": {"marginMode": "REGULAR_MARGIN", "unifiedMarginStatus": 1}}
    with pytest.raises(ExchangeAuthError, match="classic"):
        bybit_account(info, "info")
    with pytest.raises(ExchangeDataError, match="unifiedMarginStatus"):
        bybit_account({"result": {"marginMode": "REGULAR_MARGIN", "unifiedMarginStatus": 2}}, "i")


def test_documented_collateral_tables() -> None:
    book = _book()
    assert book.tiers["BTC"] == (CollateralTier(0.0, 0.85), CollateralTier(1_000_000.0, 0.0))
    assert book.switches == {"BTC": True}


def test_documented_btc_wallet_behind_an_xrpusdt_long_is_nowhere_near_liquidation() -> None:
    """The docs' BTC-only wallet (≈ 18,070 USD account) behind an XRPUSDT long 100 @ 0.3615:
    the venue says liqPrice 0.0001 (its minimum price); a single-coin model said equity -1.83
    and a liquidation price above the mark."""
    [row] = _recorded("position-list-xrpusdt.json")["result"]["list"]
    wallet = unified_wallet(_recorded("wallet-balance-btc.json"), "wallet")
    book = _book()
    with pytest.raises(ExchangeDataError, match="settle coin USDT"):
        unified_parts(wallet, [ReadPosition("USDT", -1.83, 0.381021)], book, {"USDT": 1.0})
    # The tier example was asked for BTC only; Bybit's full table values USDT at 1.
    book.update({**book.tiers, "USDT": (CollateralTier(0.0, 1.0),)}, book.switches)
    read = [ReadPosition("USDT", float(row["unrealisedPnl"]), float(row["positionMM"]))]
    assert wallet.unpriced({"USDT"}, book) == {"USDT"}
    # USDT has no row (a zero balance; the request asked for BTC only): its USD index price is
    # read from the spot ticker in production; par here.
    parts = unified_parts(wallet, read, book, {"USDT": 1.0})
    btc, usdt = parts.collateral
    assert (btc.asset, btc.quantity, btc.stable) == ("BTC", 0.805994, False)
    assert btc.price == pytest.approx(12920.95352538 / 0.805994)
    assert (usdt.asset, usdt.quantity, usdt.stable) == ("USDT", 0.0, True)
    assert parts.venue_terms == ()
    assert parts.reported.equity == pytest.approx(18070.32797922)
    assert parts.reported.maintenance_margin == pytest.approx(0.38106773)
    state = AccountState(
        venue=Venue.BYBIT_LINEAR,
        wallet_balance=parts.wallet_balance,
        positions=(
            Position(
                symbol="XRPUSDT",
                side=Side.LONG,
                margin_mode=MarginMode.CROSS,
                quantity=float(row["size"]),
                entry_price=float(row["avgPrice"]),
                mark_price=float(row["markPrice"]),
                # XRPUSDT's first risk tier (1 % MMR) and Bybit's taker fee: not in the example.
                tiers=(Tier(0.0, None, 0.01),),
                leverage=float(row["leverage"]),
                taker_fee=0.00055,
                settle_asset="USDT",
                underlying="XRP",
            ),
        ),
        asset="USD",
        model=PoolModel.UNIFIED,
        collateral=parts.collateral,
        venue_terms=parts.venue_terms,
    )
    risk = assess(state)
    # 0.805994 BTC at 0.85 less the 1.83 USDT loss, not -1.83.
    assert risk.equity == pytest.approx(12920.95352538 * 0.85 - 1.83, rel=1e-9)
    # No XRP price liquidates it, as the venue's minimum-price liqPrice says.
    assert risk.positions[0].liquidation_price is None


@pytest.fixture
async def uta() -> AsyncIterator[tuple[SimulatorServer, ExchangeHub]]:
    async with (
        running_simulator("test") as server,
        ExchangeHub(retry=TEST_RETRY, timeout=1.0, rate_limit=False) as hub,
    ):
        yield server, hub


def _client(sim: SimulatorServer, hub: ExchangeHub, account: str, venue: str, asset: str) -> Any:
    settings = account_settings(sim, account, venue, asset=asset)
    return hub.client_for(account, settings)


async def test_uta_with_usdc_and_btc_collateral_agrees_with_the_venue(
    uta: tuple[SimulatorServer, ExchangeHub],
) -> None:
    sim, hub = uta
    client = _client(sim, hub, "bybit-uta", "bybit-linear", "USDT")
    state = await client.fetch_account()
    assert (state.model, state.asset) == (PoolModel.UNIFIED, "USD")
    assert {c.asset for c in state.collateral} == {"USDC", "BTC", "USDT"}
    assert {(p.symbol, p.settle_asset, p.underlying) for p in state.positions} == {
        ("BTCUSDT", "USDT", "BTC"),
        ("ETHPERP", "USDC", "ETH"),
    }
    btc = next(c for c in state.collateral if c.asset == "BTC")
    assert btc.ratios[0].ratio == 0.95
    risk = assess(state)
    assert risk.equity == pytest.approx(state.reported.equity, rel=1e-3)
    assert risk.maintenance_margin == pytest.approx(state.reported.maintenance_margin, rel=1e-3)
    assert risk.exchange_margin_ratio == pytest.approx(state.reported.margin_ratio, abs=5e-5)
    for position, computed in zip(state.positions, risk.positions, strict=True):
        assert position.exchange_liquidation_price is not None
        assert computed.liquidation_price == pytest.approx(
            position.exchange_liquidation_price, rel=1e-3
        )
    # The BTC collateral falls with the BTC long: its liquidation is higher than the position
    # alone suggests (the USDC and the ETH short held where they are).
    report = await client.probe()
    assert report.account_model == "unified"
    assert any("whole cross pool" in warning for warning in report.warnings)


async def test_usdc_behind_a_btcusdt_long_liquidates_near_40201_plus_fee(
    uta: tuple[SimulatorServer, ExchangeHub],
) -> None:
    """The issue's case: 10,000 USDC behind a BTCUSDT long 0.5 @ 60,000, mark 58,000."""
    sim, hub = uta
    sim.market.set_price("BTC", 58_000)
    state = await _client(sim, hub, "bybit-usdc-backed", "bybit-linear", "USDC").fetch_account()
    risk = assess(state)
    [position] = risk.positions
    # Without a fee to close: 10,000 + 0.5 (P - 60,000) = 0.5 P x 0.5 % at P = 40,201.0; Bybit's
    # fee to close (taker 0.055 %) in the maintenance margin lifts it a little.
    liquidation = position.liquidation_price
    assert liquidation is not None
    assert 20_000 / (0.5 * 0.995) < liquidation < 40_201 * 1.001
    assert state.positions[0].exchange_liquidation_price == pytest.approx(liquidation, rel=1e-3)
    assert risk.equity == pytest.approx(9_000.0, rel=1e-9)
    # At that mark the pool's equity is its maintenance margin.
    [held] = state.positions
    at = assess(replace(state, positions=(replace(held, mark_price=liquidation),)))
    assert at.equity == pytest.approx(at.maintenance_margin, rel=1e-9)


async def test_isolated_margin_account_stays_one_coin_per_position(
    uta: tuple[SimulatorServer, ExchangeHub],
) -> None:
    sim, hub = uta
    state = await _client(sim, hub, "bybit-isolated", "bybit-linear", "USDT").fetch_account()
    assert (state.model, state.asset, state.collateral) == (PoolModel.ISOLATED, "USDT", ())
    assert all(p.margin_mode is MarginMode.ISOLATED for p in state.positions)


async def test_classic_account_is_refused_with_a_clear_message(
    uta: tuple[SimulatorServer, ExchangeHub],
) -> None:
    sim, hub = uta
    client = _client(sim, hub, "bybit-classic", "bybit-linear", "USDT")
    with pytest.raises(ExchangeAuthError, match="classic \\(non-unified\\) account"):
        await client.fetch_account()
    report = await client.probe()
    assert report.error is not None
    assert "classic" in report.error


async def test_inverse_entry_on_a_uta_2_cross_account_is_refused_naming_the_reason(
    uta: tuple[SimulatorServer, ExchangeHub],
) -> None:
    sim, hub = uta
    client = _client(sim, hub, "bybit-uta", "bybit-inverse", "BTC")
    with pytest.raises(ExchangeDataError, match=r"UTA 2\.0"):
        await client.fetch_account()
    # UTA 1.0 keeps inverse contracts in their own coin's contract wallet: one coin, as before.
    inverse = await _client(sim, hub, "bybit-cross", "bybit-inverse", "BTC").fetch_account()
    assert (inverse.model, inverse.asset, inverse.wallet_balance) == (
        PoolModel.SINGLE_ASSET,
        "BTC",
        0.2,
    )
