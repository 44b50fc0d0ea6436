"""Binance responses nobody here wrote (ccxt's recorded payloads, Binance's documented examples),
fed as they are through the adapter's own request path in place of the network."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.config.accounts import AccountSettings
from monitor.domain.errors import ExchangeAuthError, ExchangeDataError
from monitor.domain.margin import assess
from monitor.domain.model import PoolModel, Venue
from monitor.exchanges import ExchangeHub
from monitor.exchanges.binance import BinanceClient
from monitor.exchanges.binance_pool import asset_rates

RECORDED = Path(__file__).parent / "recorded" / "binance"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def brackets_body() -> list[dict[str, Any]]:
    """ccxt's recorded BTCUSDT bracket floors as a `/fapi/v1/leverageBracket` body, each `cum`
    the deduction that keeps maintenance margin continuous across brackets."""
    rows = [
        (float(floor), float(rate)) for floor, rate in recorded("ccxt_btcusdt_bracket_floors.json")
    ]
    brackets = []
    cum = 0.0
    for index, (floor, rate) in enumerate(rows):
        if index:
            cum += floor * (rate - rows[index - 1][1])
        cap = rows[index + 1][0] if index + 1 < len(rows) else 1e12
        brackets.append(
            {
                "bracket": index + 1,
                "notionalFloor": floor,
                "notionalCap": cap,
                "maintMarginRatio": rate,
                "cum": cum,
            }
        )
    return [{"symbol": "BTCUSDT", "notionalCoef": 1.0, "brackets": brackets}]


Replay = Callable[[dict[str, Any]], BinanceClient]


@pytest.fixture
async def replay() -> AsyncIterator[Replay]:
    """A real BinanceClient whose ccxt methods answer with the given bodies (a missing method
    fails the test), over a market list holding BTCUSDT."""
    async with ExchangeHub() as hub:

        def make(bodies: dict[str, Any]) -> BinanceClient:
            settings = AccountSettings(
                venue=Venue.BINANCE_USDM, api_key=SecretStr("k"), api_secret=SecretStr("s")
            )
            client = hub.client_for("recorded", settings)
            assert isinstance(client, BinanceClient)
            for method, body in bodies.items():

                async def answer(_params: Any = None, body: Any = body) -> Any:
                    return body

                setattr(client.exchange, method, answer)

            async def listed(*, reload: bool = False) -> None:
                client.exchange.markets_by_id = {
                    "BTCUSDT": [
                        {"id": "BTCUSDT", "baseId": "BTC", "settleId": "USDT", "contractSize": 1}
                    ]
                }

            client.ensure_markets = listed  # type: ignore[method-assign]
            return client

        yield make


def multi_assets_bodies() -> dict[str, Any]:
    return {
        "fapiPrivateGetMultiAssetsMargin": recorded("binance_docs_multi_assets_margin.json"),
        "fapiPrivateV3GetAccount": recorded("ccxt_multi_assets_account.json"),
        "fapiPrivateV3GetPositionRisk": recorded("ccxt_multi_assets_position_risk.json"),
        "fapiPrivateGetLeverageBracket": brackets_body(),
        "fapiPublicGetAssetIndex": recorded("binance_docs_asset_index.json"),
    }


async def test_recorded_multi_assets_account_is_pooled_and_agrees_with_the_venue(
    replay: Replay, caplog: pytest.LogCaptureFixture
) -> None:
    client = replay(multi_assets_bodies())
    with caplog.at_level(logging.WARNING):
        state = await client.fetch_account()
        await client.fetch_account()
    assert state.model is PoolModel.MULTI_ASSETS
    assert state.asset == "USD"
    assert {coin.asset: coin.quantity for coin in state.collateral} == {
        "USDC": 22.0,
        "USDT": pytest.approx(3.72964781),
    }
    [position] = state.positions
    assert (position.settle_asset, position.underlying) == ("USDT", "BTC")
    # The documented asset index lists ADAUSD only: USDT and USDC are taken at 1 USD, said once.
    assumed = [r for r in caplog.records if "valued at 1 USD" in r.getMessage()]
    assert sorted(r.getMessage().split("no ")[1][:4] for r in assumed) == ["USDC", "USDT"]
    assert state.reported.equity == pytest.approx(26.26840422)
    assert state.reported.maintenance_margin == pytest.approx(2.43034303)
    risk = assess(state)
    # The account response was taken a moment after the positionRisk (mark 67,506.17 against
    # 67,502.69): at the positionRisk's mark the venue's pool is its USD cross wallet plus that
    # row's PnL, which we match closely; the account's own total differs by the 0.03 USD move.
    assert risk.equity == pytest.approx(25.72610060 + 0.51106678, rel=2e-4)
    assert risk.equity == pytest.approx(26.27, rel=2e-3)
    assert risk.maintenance_margin == pytest.approx(2.43034303, rel=1e-3)
    [computed] = risk.positions
    assert computed.liquidation_price == pytest.approx(64846.9875379, rel=1e-3)
    assert position.exchange_liquidation_price == pytest.approx(64846.9875379)
    # What a single-coin model said of this account (3.73 USDT alone): 0.3 % below the mark.
    assert abs(computed.liquidation_price - 67300.70) > 2000


async def test_recorded_account_read_as_single_asset_when_the_venue_says_so(
    replay: Replay,
) -> None:
    bodies = multi_assets_bodies() | {
        "fapiPrivateGetMultiAssetsMargin": {"multiAssetsMargin": False}
    }
    client = replay(bodies)
    state = await client.fetch_account()
    # The totals cover USDT and USDC: the answer contradicts single-asset mode, so the model is
    # read again at once; the venue still says single-asset, and the USDT pool alone is shown.
    assert state.model is PoolModel.SINGLE_ASSET
    assert state.wallet_balance == pytest.approx(3.72964781)


async def test_documented_examples_parse_as_they_are(replay: Replay) -> None:
    client = replay(multi_assets_bodies())
    state = await client.fetch_account()
    assert state.model is PoolModel.MULTI_ASSETS
    [ada] = asset_rates(recorded("binance_docs_asset_index.json"), "assetIndex").items()
    assert ada[0] == "ADA"
    assert ada[1].bid_rate / ada[1].index == pytest.approx(0.9, rel=1e-6)
    assert ada[1].ask_rate / ada[1].index == pytest.approx(1.1, rel=1e-6)


async def test_recorded_portfolio_margin_account(replay: Replay) -> None:
    async def refused(_params: Any = None) -> Any:
        raise ExchangeAuthError("binance-usdm recorded: -2015 Invalid API-key, IP, or permissions")

    client = replay(
        {
            "papiGetAccount": recorded("binance_docs_papi_account.json"),
            "papiGetBalance": recorded("ccxt_papi_balance.json"),
            "papiGetUmPositionRisk": [],
            "papiGetUmLeverageBracket": brackets_body(),
            "fapiPublicGetAssetIndex": recorded("binance_docs_asset_index.json"),
            "sapiGetPortfolioCollateralRate": recorded("binance_docs_collateral_rate.json"),
        }
    )
    client.exchange.fapiPrivateGetMultiAssetsMargin = refused
    state = await client.fetch_account()
    assert state.model is PoolModel.PORTFOLIO
    assert state.liquidation_ratio == 1.05
    coins = {coin.asset: coin for coin in state.collateral}
    # USDT: margin 30.6003261 less the 0.00011146 loan plus the 105.43419058 USDⓈ-M wallet.
    assert coins["USDT"].quantity == pytest.approx(30.6003261 - 0.00011146 + 105.43419058)
    assert coins["USDC"].quantity == pytest.approx(-0.00014784)
    assert coins["ADA"].price == pytest.approx(1.92957370)
    assert "ETH" not in coins  # only a COIN-M wallet: the venue's figure covers it
    [term] = state.venue_terms
    assert term.name.startswith("venue figure")
    assert "LTC" in term.name  # no index prices it
    assert state.reported.margin_ratio == pytest.approx(1 / 5167.92171923)
    risk = assess(state)
    # Ours plus the labelled venue figure is the venue's own account at today's prices.
    assert risk.equity == pytest.approx(122607.35137903)
    assert risk.maintenance_margin == pytest.approx(23.72469206)


async def test_isolated_row_without_isolated_wallet_is_refused(replay: Replay) -> None:
    [row] = recorded("ccxt_multi_assets_position_risk.json")
    del row["isolatedWallet"]
    row["isolatedMargin"] = "5.00000000"
    client = replay(
        {
            "fapiPrivateGetMultiAssetsMargin": {"multiAssetsMargin": False},
            "fapiPrivateV3GetAccount": recorded("ccxt_multi_assets_account.json"),
            "fapiPrivateV3GetPositionRisk": [row],
            "fapiPrivateGetLeverageBracket": brackets_body(),
        }
    )
    with pytest.raises(ExchangeDataError, match=r"positionRisk\[0\]\.isolatedWallet: missing"):
        await client.fetch_account()
    [v2_row] = recorded("ccxt_multi_assets_position_risk.json")
    del v2_row["isolatedWallet"]
    v2_row["marginType"] = "isolated"
    client.exchange.fapiPrivateV3GetPositionRisk = _answer([v2_row])
    with pytest.raises(ExchangeDataError, match="isolatedWallet"):
        await client.fetch_account()


def _answer(body: Any) -> Callable[..., Any]:
    async def answer(_params: Any = None) -> Any:
        return body

    return answer
