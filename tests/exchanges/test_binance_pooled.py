"""Real ccxt against the simulator's Binance Multi-Assets and Portfolio Margin accounts: the model
is detected, and what `show` computes agrees with the venue's account-level figures."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from monitor.domain.margin import assess
from monitor.domain.model import PoolModel, Venue
from monitor.exchanges import ExchangeHub
from monitor.exchanges.binance import BinanceClient
from monitor.exchanges.probe import poll_cost
from monitor.simulator.server import SimulatorServer
from tests.exchanges.conftest import TEST_RETRY
from tests.support.simulator import account_settings, running_simulator


@pytest.fixture
async def test_sim() -> AsyncIterator[SimulatorServer]:
    async with running_simulator("test") as server:
        yield server


@pytest.fixture
async def hub() -> AsyncIterator[ExchangeHub]:
    async with ExchangeHub(retry=TEST_RETRY, timeout=2.0, rate_limit=False) as exchange_hub:
        yield exchange_hub


def client(sim: SimulatorServer, hub: ExchangeHub, account: str) -> BinanceClient:
    settings = account_settings(sim, account, Venue.BINANCE_USDM)
    made = hub.client_for(account, settings)
    assert isinstance(made, BinanceClient)
    return made


@pytest.mark.parametrize(
    ("account", "model"),
    [
        ("binance-multi-assets", PoolModel.MULTI_ASSETS),
        ("binance-portfolio", PoolModel.PORTFOLIO),
    ],
)
async def test_pooled_account_agrees_with_the_venue(
    test_sim: SimulatorServer, hub: ExchangeHub, account: str, model: PoolModel
) -> None:
    state = await client(test_sim, hub, account).fetch_account()
    assert state.model is model
    assert state.asset == "USD"
    assert {p.settle_asset for p in state.positions} <= {c.asset for c in state.collateral}
    risk = assess(state)
    assert state.reported.equity == pytest.approx(risk.equity, rel=1e-3)
    assert state.reported.maintenance_margin == pytest.approx(risk.maintenance_margin, rel=1e-3)
    priced = 0
    for position, computed in zip(state.positions, risk.positions, strict=True):
        if position.exchange_liquidation_price is not None:
            priced += 1
            assert computed.liquidation_price == pytest.approx(
                position.exchange_liquidation_price, rel=1e-3
            ), position.symbol
    assert priced >= 1


async def test_multi_assets_btc_collateral_moves_with_the_btc_long(
    test_sim: SimulatorServer, hub: ExchangeHub
) -> None:
    state = await client(test_sim, hub, "binance-multi-assets").fetch_account()
    btc = next(c for c in state.collateral if c.asset == "BTC")
    assert not btc.stable
    assert btc.ratios[0].ratio == pytest.approx(0.95)
    assert {(p.symbol, p.settle_asset, p.underlying) for p in state.positions} == {
        ("BTCUSDT", "USDT", "BTC"),
        ("ETHUSDC", "USDC", "ETH"),
    }
    # The non-stable BTC collateral makes the asset index part of every poll.
    before = sum(1 for r in test_sim.request_log if r.path == "/fapi/v1/assetIndex")
    await client(test_sim, hub, "binance-multi-assets").fetch_account()
    after = sum(1 for r in test_sim.request_log if r.path == "/fapi/v1/assetIndex")
    assert after == before + 1


async def test_portfolio_account_is_read_from_papi_with_a_labelled_venue_term(
    test_sim: SimulatorServer, hub: ExchangeHub
) -> None:
    state = await client(test_sim, hub, "binance-portfolio").fetch_account()
    assert state.liquidation_ratio == 1.05
    [term] = state.venue_terms
    assert term.name.startswith("venue figure")
    assert term.equity == pytest.approx(0.0, abs=1e-6 * state.reported.equity)  # type: ignore[operator]
    paths = {r.path for r in test_sim.request_log if r.status == 200}
    assert {"/papi/v1/account", "/papi/v1/um/positionRisk", "/papi/v1/balance"} <= paths
    assert "/fapi/v3/account" not in paths


async def test_a_change_of_model_between_polls_is_picked_up(
    test_sim: SimulatorServer, hub: ExchangeHub
) -> None:
    watched = client(test_sim, hub, "binance-multi-assets")
    assert (await watched.fetch_account()).model is PoolModel.MULTI_ASSETS
    account = test_sim.market.accounts["binance-multi-assets"]

    def switch(mode: str) -> None:
        account.spec = dataclasses.replace(account.spec, account_mode=mode)
        account.version += 1

    # The venue's totals now cover USDT alone: that contradicts Multi-Assets, re-read at once.
    switch("single-asset")
    state = await watched.fetch_account()
    assert state.model is PoolModel.SINGLE_ASSET
    assert state.asset == "USDT"
    # fapi refuses the key once the account is Portfolio Margin; papi answers.
    switch("portfolio")
    assert (await watched.fetch_account()).model is PoolModel.PORTFOLIO
    # And back: papi refuses, fapi answers.
    switch("multi-assets")
    assert (await watched.fetch_account()).model is PoolModel.MULTI_ASSETS


async def test_the_model_is_read_again_hourly(test_sim: SimulatorServer, hub: ExchangeHub) -> None:
    now = [0.0]
    watched = client(test_sim, hub, "binance-oneway")
    watched.clock = lambda: now[0]

    def reads() -> int:
        return sum(1 for r in test_sim.request_log if r.path == "/fapi/v1/multiAssetsMargin")

    assert (await watched.fetch_account()).model is PoolModel.SINGLE_ASSET
    await watched.fetch_account()
    assert reads() == 1
    now[0] = watched.tiers.refresh_interval
    await watched.fetch_account()
    assert reads() == 2


async def test_throttle_counts_binance_weights_of_the_model_reads(
    test_sim: SimulatorServer, hub: ExchangeHub
) -> None:
    exchange = client(test_sim, hub, "binance-oneway").exchange
    for api, path, weight in [
        ("fapiPrivate", "multiAssetsMargin", 30),
        ("fapiPublic", "assetIndex", 10),
        ("papi", "account", 20),
        ("papi", "balance", 20),
        ("papi", "um/positionRisk", 5),
    ]:
        assert exchange.calculate_rate_limiter_cost(api, "GET", path, {}) == weight
    assert poll_cost(Venue.BINANCE_USDM, PoolModel.PORTFOLIO.value) > poll_cost(
        Venue.BINANCE_USDM, PoolModel.SINGLE_ASSET.value
    )
