"""Degrade, don't blind: optional data a venue does not serve (Bybit's fee rates and collateral
tables) falls back to a stated conservative value, with one warning, instead of failing every poll;
real ccxt against the simulator, and `show` as a user runs it."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.accounts import AccountSettings
from monitor.config.alerts import AlertsSettings, account_rules
from monitor.domain.codec import state_from_json
from monitor.domain.margin import assess
from monitor.domain.model import Venue
from monitor.exchanges import ExchangeHub
from monitor.exchanges.bybit import DEFAULT_TAKER_FEE
from monitor.ports import SystemClock
from monitor.service import PollService, WatchedAccount
from monitor.simulator.server import SimulatorServer
from monitor.storage.migrate import prepare_database
from tests.exchanges.cli_support import cli, write_config
from tests.exchanges.conftest import TEST_RETRY
from tests.support.simulator import account_settings, running_simulator

FEE_PATH = "/v5/account/fee-rate"
COLLATERAL_PATHS = ("/v5/spot-margin-trade/collateral", "/v5/account/collateral-info")


def _settings(sim: SimulatorServer, account: str) -> AccountSettings:
    return account_settings(sim, account, Venue.BYBIT_LINEAR)


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage())


async def test_fee_rates_never_read_use_bybits_default_fee_and_say_so(
    sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    sim.inject_fault("server_error", path=FEE_PATH, status=503)
    # Tables re-read on every fetch, so the second fetch asks for the rates again.
    async with ExchangeHub(tier_refresh=0, retry=TEST_RETRY, timeout=1.0, rate_limit=False) as hub:
        client = hub.client_for("main", _settings(sim, "by-cross"))
        assumed = await client.fetch_account()
        again = await client.fetch_account()
        # The account is still watched: positions, figures, and the assumption in words.
        assert assumed.positions
        assert {p.taker_fee for p in assumed.positions} == {DEFAULT_TAKER_FEE}
        assert assess(assumed).maintenance_margin > 0
        [assumption] = assumed.assumptions
        assert "taker fee 0.055 % (Bybit's non-VIP default)" in assumption
        assert "BTCUSDT" in assumption
        assert "503" in assumption
        assert again.assumptions == assumed.assumptions
        assert _warnings(caplog, "assumed at Bybit's non-VIP default") == 1

        sim.clear_faults()
        read = await client.fetch_account()
        assert read.assumptions == ()


async def test_collateral_tables_never_read_count_coins_at_their_cautious_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The built-in scenario's UTA holds USDC and BTC behind a BTCUSDT long and an ETHPERP short.
    async with (
        running_simulator("test") as sim,
        ExchangeHub(tier_refresh=0, retry=TEST_RETRY, timeout=1.0, rate_limit=False) as hub,
    ):
        known = await hub.client_for("known", _settings(sim, "bybit-uta")).fetch_account()
        for path in COLLATERAL_PATHS:
            sim.inject_fault("server_error", path=path, status=503)
        client = hub.client_for("main", _settings(sim, "bybit-uta"))
        assumed = await client.fetch_account()
        await client.fetch_account()
        assert _warnings(caplog, "collateral tables unreadable") == 1

        ratios = {coin.asset: [t.ratio for t in coin.ratios] for coin in assumed.collateral}
        # BTC is worth nothing as margin until its tiers are read; the stablecoins count in full.
        assert ratios == {"USDT": [1.0], "USDC": [1.0], "BTC": [0.0]}
        [assumption] = assumed.assumptions
        assert "100 % for stablecoins and 0 % for other coins" in assumption
        assert "BTC" in assumption
        # Cautious: less equity than the venue's real ratios give, the same positions.
        assert assumed.positions == known.positions
        assert assess(assumed).equity < assess(known).equity

        sim.clear_faults()
        read = await client.fetch_account()
        assert read.assumptions == ()
        assert read.collateral == known.collateral


async def test_show_prints_the_assumption(sim: SimulatorServer, tmp_path: Path) -> None:
    sim.inject_fault("server_error", path=FEE_PATH, status=503)
    config = write_config(
        sim, tmp_path / "config.toml", [("uta", "by-cross", "bybit-linear", "USDT")]
    )
    code, out, err = await cli("show", "--config", str(config), "--format", "json")
    assert code == 0, err
    [document] = json.loads(out)
    [assumption] = document["assumptions"]
    assert assumption.startswith("taker fee 0.055 %")
    assert document["state"]["assumptions"] == [assumption]
    assert state_from_json(document["state"]).assumptions == (assumption,)
    code, out, err = await cli("show", "--config", str(config), "--format", "table")
    assert code == 0, err
    assert "assumed: taker fee 0.055 % (Bybit's non-VIP default)" in out


async def test_portfolio_margin_rates_never_read_take_the_cautious_bound_per_coin(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The built-in scenario's Portfolio Margin account: USDT and 1 BTC behind a 1.5 BTC short and
    # an ETH long. The BTC short loses when BTC rises, so the BTC collateral's gain gets no credit.
    async with (
        running_simulator("test") as sim,
        ExchangeHub(tier_refresh=0, retry=TEST_RETRY, timeout=1.0, rate_limit=False) as hub,
    ):
        settings = account_settings(sim, "binance-portfolio", Venue.BINANCE_USDM)
        known = await hub.client_for("known", settings).fetch_account()
        sim.inject_fault("server_error", path="/sapi/v1/portfolio/collateralRate", status=503)
        assumed = await hub.client_for("main", settings).fetch_account()

        ratios = {coin.asset: coin.ratios[0].ratio for coin in assumed.collateral}
        assert ratios == {"USDT": 1.0, "BTC": 0.0}
        [assumption] = assumed.assumptions
        assert "collateral rate of BTC, USDT at its cautious bound" in assumption
        assert _warnings(caplog, "no Portfolio Margin collateral rate for BTC") == 1
        # Pinned to the venue's equity today, and the BTC short's liquidation comes sooner.
        btc = {p.symbol: p for p in assess(known).positions}["BTCUSDT"]
        cautious = {p.symbol: p for p in assess(assumed).positions}["BTCUSDT"]
        assert btc.liquidation_price is not None
        assert cautious.liquidation_price is not None
        assert cautious.liquidation_price < btc.liquidation_price


async def test_a_poll_without_fee_rates_is_stored_and_its_alerts_carry_the_assumption(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.inject_fault("server_error", path=FEE_PATH, status=503)
    store = await prepare_database(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        async with ExchangeHub(retry=TEST_RETRY, timeout=1.0, rate_limit=False) as hub:
            await store.register_account(
                "uta", venue="bybit-linear", asset="USDT", poll_interval=1.0, now=datetime.now(UTC)
            )
            # A margin-ratio level every account breaches, so an alert shows what it carries.
            alerts = AlertsSettings.model_validate(
                {"margin_ratio": {"warning_below": "100000%", "for": "0s"}}
            )
            rules = account_rules(alerts, None, "uta")
            client = hub.client_for("uta", _settings(sim, "by-cross"))
            service = PollService(store, SystemClock(), ["console"])
            await service.watch(WatchedAccount("uta", client, rules, timedelta(seconds=1)))
            report = await service.poll("uta")
    finally:
        await store.close()
    assert report.error_kind is None, report.error
    assert report.snapshot is not None
    [assumption] = report.snapshot.state.assumptions
    [alert] = [n for n in report.notifications if n.rule == "margin_ratio"]
    assert alert.facts["assumptions"] == assumption
    assert "Assumed for want of the venue's data: taker fee 0.055 %" in alert.text
