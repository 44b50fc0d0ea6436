"""Real ccxt against the simulator: every venue and mode becomes the right AccountState, and our
liquidation prices agree with the ones the (simulated) exchange reports."""

from __future__ import annotations

import asyncio
import time

import pytest

from monitor.domain.errors import ExchangeUnavailable
from monitor.domain.margin import assess
from monitor.domain.model import MarginMode, Venue
from monitor.exchanges import ExchangeHub
from monitor.simulator.scenario import TierSpec
from monitor.simulator.server import SimulatorServer
from tests.exchanges.conftest import TEST_RETRY, ClientFactory
from tests.exchanges.scenario import POOLS
from tests.support.simulator import account_settings


@pytest.mark.parametrize(
    ("account", "venue", "asset", "expected"),
    POOLS,
    ids=[f"{account}-{venue}-{asset}" for account, venue, asset, _ in POOLS],
)
async def test_pool_matches_the_exchange(
    client_for: ClientFactory,
    account: str,
    venue: str,
    asset: str,
    expected: list[tuple[str, str, str, bool]],
) -> None:
    client = client_for(account, venue, asset)
    state = await client.fetch_account()
    assert state.venue is Venue(venue)
    # A pooled account (Bybit UTA cross) is valued in USD whatever the entry's asset.
    assert state.asset == ("USD" if state.pooled else asset)
    got = [(p.symbol, p.side.value, p.margin_mode.value, p.hedge) for p in state.positions]
    assert sorted(got) == sorted(expected)
    assert state.wallet_balance > 0
    risk = assess(state)
    for position, computed in zip(state.positions, risk.positions, strict=True):
        assert position.tiers, position.symbol
        # COIN-M positionRisk carries no maintMargin; every other venue does.
        if position.exchange_maintenance_margin is not None or venue != "binance-coinm":
            assert position.exchange_maintenance_margin == pytest.approx(
                computed.maintenance_margin, rel=1e-5
            ), position.symbol
        if position.exchange_liquidation_price is None:
            assert computed.liquidation_price is None, position.symbol
        else:
            # The venue rounds its price to the tick; ours is unrounded.
            assert computed.liquidation_price == pytest.approx(
                position.exchange_liquidation_price, rel=2e-5
            ), position.symbol
        if position.margin_mode is MarginMode.ISOLATED:
            assert position.isolated_margin is not None
            assert position.isolated_margin > 0
    # The venue's own pool figures sit beside ours and agree with them.
    if any(p.margin_mode is MarginMode.CROSS for p in state.positions):
        assert state.reported.equity == pytest.approx(risk.equity, rel=1e-4)
        assert state.reported.maintenance_margin == pytest.approx(risk.maintenance_margin, rel=1e-4)
        # Bybit's accountMMRate has 4 decimals.
        tolerance = {"abs": 5e-5} if state.pooled else {"rel": 1e-3}
        assert state.reported.margin_ratio == pytest.approx(risk.exchange_margin_ratio, **tolerance)


async def test_brackets_several_tiers_and_deductions(client_for: ClientFactory) -> None:
    state = await client_for("bn-oneway").fetch_account()
    btc = next(p for p in state.positions if p.symbol == "BTCUSDT")
    assert [t.mmr for t in btc.tiers] == pytest.approx([0.004, 0.005, 0.0065, 0.01])
    assert [t.deduction for t in btc.tiers] == pytest.approx([0, 50, 950, 11_450])
    assert btc.tiers[-1].cap is None
    # 20 BTC at 60 000 = 1.2M notional: third bracket, which a ccxt MM without `cum` would overstate.
    assert btc.exchange_maintenance_margin == pytest.approx(1_200_000 * 0.0065 - 950, rel=1e-3)


async def test_coin_margined_contract_size(client_for: ClientFactory) -> None:
    state = await client_for("bn-oneway", "binance-coinm", "BTC").fetch_account()
    [position] = state.positions
    assert position.contract_size == 100
    assert position.quantity == 600


async def test_empty_account_is_empty_not_an_error(client_for: ClientFactory) -> None:
    state = await client_for("bn-empty").fetch_account()
    assert state.positions == ()
    assert state.wallet_balance == 1_000
    assert (await client_for("by-empty").fetch_account()).positions == ()


async def test_tier_tables_are_reported_once_then_on_change(
    client_for: ClientFactory, sim: SimulatorServer
) -> None:
    client = client_for("bn-oneway")
    await client.fetch_account()
    first = client.drain_tier_changes()
    assert {c.symbol for c in first} == {"BTCUSDT", "ETHUSDT"}
    assert not any(c.is_change for c in first)
    await client.fetch_account()
    assert client.drain_tier_changes() == []
    brackets = [r for r in sim.request_log if r.path == "/fapi/v1/leverageBracket"]
    assert len(brackets) == 1


async def test_markets_are_loaded_once_per_venue(
    client_for: ClientFactory, sim: SimulatorServer
) -> None:
    clients = [client_for(name) for name in ("bn-oneway", "bn-hedge", "bn-empty")]
    for client in clients:
        await client.fetch_account()
    assert sum(1 for r in sim.request_log if r.path == "/fapi/v1/exchangeInfo") == 1
    throttlers = {id(client.exchange.throttler) for client in clients}
    assert len(throttlers) == 1


async def test_entries_of_one_key_share_an_instance_until_the_last_closes(
    client_for: ClientFactory,
) -> None:
    usdt = client_for("by-cross", "bybit-linear", "USDT")
    usdc = client_for("by-cross", "bybit-linear", "USDC")
    inverse = client_for("by-cross", "bybit-inverse", "BTC")
    assert usdt.exchange is usdc.exchange is inverse.exchange
    await usdt.fetch_account()
    await usdt.close()
    await usdt.close()  # a second close must not release the instance the others still use
    # The unified cross pool: the USDC entry watches the USDT contracts too.
    assert len((await usdc.fetch_account()).positions) == 3
    await usdc.close()
    assert (await inverse.fetch_account()).positions
    await inverse.close()
    assert inverse.exchange.session is None


async def test_closing_waits_for_the_poll_still_running_on_the_client(
    client_for: ClientFactory, sim: SimulatorServer
) -> None:
    # A reload or removal closes an account's client while its poll may be half-way.
    client = client_for("bn-oneway")
    await client.fetch_account()
    sim.inject_fault("timeout", account="bn-oneway", path="/fapi/v3/positionRisk", delay=0.3)
    polling = asyncio.create_task(client.fetch_account())
    await asyncio.sleep(
        0.1
    )  # half-way through the 0.3 s answer (the simulator logs it only when sent)
    sim.clear_faults()
    await client.close()
    assert polling.done()
    assert {p.symbol for p in (await polling).positions} == {"BTCUSDT", "ETHUSDT"}
    assert client.exchange.session is None


async def test_a_changed_bracket_table_is_reported(sim: SimulatorServer) -> None:
    settings = account_settings(sim, "bn-oneway", Venue.BINANCE_USDM)
    # Brackets re-read on every fetch, so the change shows at the next poll.
    async with ExchangeHub(tier_refresh=0, rate_limit=False) as hub:
        client = hub.client_for("main", settings)
        await client.fetch_account()
        client.drain_tier_changes()
        # Binance lowers this user's first bracket cap: the per-user table changes under us.
        sim.market.accounts["bn-oneway"].spec.tier_overrides["ETHUSDT"] = (
            TierSpec(floor=0, cap=25_000, mmr=0.004, max_leverage=100, deduction=0),
            TierSpec(floor=25_000, cap=600_000, mmr=0.005, max_leverage=75, deduction=25),
        )
        state = await client.fetch_account()
        [change] = client.drain_tier_changes()
    assert change.is_change
    assert change.symbol == "ETHUSDT"
    assert change.previous is not None
    assert change.previous[0].cap == 50_000
    assert change.current[0].cap == 25_000
    eth = next(p for p in state.positions if p.symbol == "ETHUSDT")
    assert eth.tiers == change.current


@pytest.mark.parametrize(
    ("account", "venue", "tier_path"),
    [
        ("bn-oneway", Venue.BINANCE_USDM, "/fapi/v1/leverageBracket"),
        ("by-cross", Venue.BYBIT_LINEAR, "/v5/market/risk-limit"),
    ],
)
async def test_a_failed_table_refresh_keeps_the_tables_we_have(
    sim: SimulatorServer, account: str, venue: Venue, tier_path: str
) -> None:
    settings = account_settings(sim, account, venue)
    # Tables re-read on every fetch; the venue's table endpoint then fails for good.
    async with ExchangeHub(tier_refresh=0, retry=TEST_RETRY, timeout=1.0, rate_limit=False) as hub:
        client = hub.client_for("main", settings)
        first = await client.fetch_account()
        sim.inject_fault("server_error", path=tier_path, status=503)
        again = await client.fetch_account()
        assert again.positions == first.positions
        with pytest.raises(ExchangeUnavailable):
            # A client that never had the tables cannot compute anything: it fails.
            await hub.client_for("other", settings).fetch_account()


async def test_binance_polls_are_paced_by_the_weight_binance_counts(sim: SimulatorServer) -> None:
    # ccxt charges 1 for the v3 account and positionRisk calls and refills 1200 per minute;
    # Binance counts 5 each against 2400 per minute and address, then answers 429 and bans.
    settings = account_settings(sim, "bn-empty", Venue.BINANCE_USDM)
    async with ExchangeHub(retry=TEST_RETRY, timeout=1.0) as hub:
        client = hub.client_for("main", settings)
        await client.fetch_account()
        sent = len(sim.request_log)
        started = time.monotonic()
        for _ in range(4):
            await client.fetch_account()
        elapsed = time.monotonic() - started
    weight = sum(record.weight for record in list(sim.request_log)[sent:])
    assert weight == 4 * (5 + 5)
    # 2400 per minute is 25 ms per unit of weight; only the first request may pass at once.
    assert elapsed >= (weight - 5) * 0.025 - 0.05
