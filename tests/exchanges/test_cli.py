"""`show` and `check-config --connect` as a user runs them: the real command in a subprocess,
against the simulator running in this test's event loop."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.simulator.server import SimulatorServer
from tests.exchanges.cli_support import cli, write_config


async def test_show_json_puts_our_liquidation_prices_beside_the_exchange(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.inject_fault("auth", account="by-hedge")
    config = write_config(
        sim,
        tmp_path / "config.toml",
        [
            ("usdm", "bn-hedge", "binance-usdm", "USDT"),
            ("inverse", "by-cross", "bybit-inverse", "BTC"),
            ("empty", "bn-empty", "binance-usdm", "USDT"),
            ("bad", "by-hedge", "bybit-linear", "USDT"),
        ],
    )
    code, out, err = await cli("show", "--config", str(config), "--format", "json")
    # One account failed: the others are still shown, and the exit status says something failed.
    assert code == 1, err
    documents = {document["account"]: document for document in json.loads(out)}
    assert set(documents) == {"usdm", "inverse", "empty", "bad"}
    assert documents["empty"]["state"]["positions"] == []
    assert "rejected the API key" in documents["bad"]["error"]
    assert "state" not in documents["bad"]
    usdm = documents["usdm"]
    assert usdm["state"]["venue"] == "binance-usdm"
    assert len(usdm["risk"]["positions"]) == 3
    for line in usdm["liquidation_prices"] + documents["inverse"]["liquidation_prices"]:
        if line["exchange"] is None:
            # A coin-margined short backed by enough coin cannot be liquidated.
            assert line["ours"] is None, line
        else:
            assert abs(line["difference"]) < 1e-4, line
    assert sim.accounts["bn-hedge"].api_secret not in out + err


async def test_show_table_and_one_account(sim: SimulatorServer, tmp_path: Path) -> None:
    config = write_config(
        sim,
        tmp_path / "config.toml",
        [
            ("main", "bn-oneway", "binance-usdm", "USDT"),
            ("other", "by-empty", "bybit-linear", "USDT"),
        ],
    )
    code, out, err = await cli(
        "show", "--config", str(config), "--account", "main", "--format", "table"
    )
    assert code == 0, err
    assert "main (binance-usdm, single-asset margin, USDT)" in out
    assert "BTCUSDT" in out
    assert "liq. exchange" in out
    assert "other" not in out


async def test_check_config_connect_reports_each_account(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    config = write_config(
        sim,
        tmp_path / "config.toml",
        [
            ("trader", "bn-hedge", "binance-usdm", "USDT"),
            ("watch", "by-isolated", "bybit-linear", "USDT"),
        ],
    )
    code, out, err = await cli("check-config", "--config", str(config), "--connect")
    assert code == 0, err
    assert "account trader (binance-usdm):" in out
    assert "reachable: yes, API key accepted" in out
    assert "position mode: hedge" in out
    assert "warning: the API key can WITHDRAW funds" in out
    assert "account watch (bybit-linear):" in out
    assert "margin modes: isolated" in out
    assert "key can trade: no; can withdraw: no" in out
    assert f"request budget: binance-fapi at {sim.base_url}: 1 account(s)" in out
    assert sim.accounts["bn-hedge"].api_secret not in out + err
