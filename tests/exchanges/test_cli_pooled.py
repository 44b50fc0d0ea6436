"""`show` and `check-config --connect` on pooled accounts, as a user runs them: the real command in a
subprocess against the simulator's built-in test scenario."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.simulator.server import SimulatorServer
from tests.exchanges.cli_support import cli, write_config
from tests.support.simulator import running_simulator


@pytest.fixture(name="venue")
async def _venue() -> AsyncIterator[SimulatorServer]:
    async with running_simulator("test") as server:
        yield server


async def test_show_reads_pooled_accounts_as_one_usd_pool_and_refuses_a_classic_one(
    venue: SimulatorServer, tmp_path: Path
) -> None:
    config = write_config(
        venue,
        tmp_path / "config.toml",
        [
            ("multi", "binance-multi-assets", "binance-usdm", "USDT"),
            ("pm", "binance-portfolio", "binance-usdm", "USDT"),
            ("uta", "bybit-uta", "bybit-linear", "USDT"),
            ("classic", "bybit-classic", "bybit-linear", "USDT"),
        ],
    )
    code, out, err = await cli("show", "--config", str(config), "--format", "json")
    # A classic Bybit account is refused with a message, never computed as something it is not.
    assert code == 1, err
    documents = {document["account"]: document for document in json.loads(out)}
    assert "classic (non-unified) account" in documents["classic"]["error"]
    assert "state" not in documents["classic"]
    multi, pm, uta = documents["multi"], documents["pm"], documents["uta"]
    assert (uta["model"], uta["state"]["asset"]) == ("unified", "USD")
    assert (multi["model"], multi["state"]["asset"]) == ("multi-assets", "USD")
    assert {c["asset"] for c in multi["state"]["collateral"]} >= {"USDT", "USDC", "BTC"}
    # Our pool figures are the venue's account-level ones, within 0.1 %.
    for document in (multi, pm, uta):
        reported = document["state"]["reported"]
        risk = document["risk"]
        assert risk["equity"] == pytest.approx(reported["equity"], rel=1e-3)
        assert risk["maintenance_margin"] == pytest.approx(reported["maintenance_margin"], rel=1e-3)
    assert pm["model"] == "portfolio"
    assert pm["state"]["liquidation_ratio"] == 1.05

    code, out, err = await cli("show", "--config", str(config), "--format", "table")
    assert code == 1, err
    assert "classic (non-unified) account" in err
    assert "uta (bybit-linear, unified margin, USD)" in out
    assert "multi (binance-usdm, multi-assets margin, USD)" in out
    assert "pm (binance-usdm, portfolio margin, USD)" in out
    assert "liquidation at margin ratio" in out
    assert "USD value (PnL incl.)" in out

    code, out, err = await cli("check-config", "--config", str(config), "--connect")
    assert code == 1, out + err  # the classic account fails
    assert "margin model: multi-assets" in out
    assert "margin model: unified" in out
    # Multi-Assets (22 per poll) and Portfolio Margin (57) cost more than the 12 assumed before
    # (each with one held symbol's protective orders, 2).
    before = next(line for line in out.splitlines() if line.startswith("request budget: binance"))
    after = next(
        line
        for line in out.splitlines()
        if line.startswith("request budget with the detected margin models: binance")
    )
    assert "2 account(s) use 144.0 weight" in before  # every 10 s
    assert "2 account(s) use 474.0 weight" in after
    assert "margin model: portfolio" in out
