"""Scenario files: the built-in ones load, bad input names its field, price paths are reproducible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.domain.errors import InvalidInput
from monitor.simulator import load_scenario
from monitor.simulator.prices import PricePaths
from monitor.simulator.scenario import Move


def _minimal(**account: Any) -> dict[str, Any]:
    return {
        "feeds": {"BTC": {"price": 60000}},
        "instruments": [{"venue": "binance-usdm", "symbol": "BTCUSDT"}],
        "accounts": {"a": {"exchange": "binance", "wallet": {"USDT": 100}} | account},
    }


@pytest.mark.parametrize("name", ["demo", "test"])
def test_builtin_scenarios_load(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.accounts
    assert len({a.api_key for a in scenario.accounts}) == len(scenario.accounts)


def test_json_files_load(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(_minimal()))
    scenario = load_scenario(path)
    assert scenario.name == "mine"
    assert scenario.accounts[0].wallet == {"USDT": 100.0}


def test_deductions_follow_the_recursion() -> None:
    data = _minimal()
    data["instruments"][0]["tiers"] = [
        {"cap": 50000, "mmr": "0.4%"},
        {"cap": 250000, "mmr": "0.5%"},
        {"cap": 1000000, "mmr": "1%"},
        {"mmr": "2.5%"},
    ]
    tiers = load_scenario(data).instruments[0].tiers
    assert [t.deduction for t in tiers] == pytest.approx([0, 50, 1300, 16300])
    assert [t.floor for t in tiers] == [0, 50000, 250000, 1000000]


def test_tier_rates_and_deductions_are_the_decimals_a_venue_publishes() -> None:
    data = _minimal()
    data["instruments"][0]["tiers"] = [
        {"cap": 50000, "mmr": "0.4%"},
        {"cap": 600000, "mmr": "0.5%"},
        {"cap": 3000000, "mmr": "0.65%"},
        {"mmr": "1%"},
    ]
    tiers = load_scenario(data).instruments[0].tiers
    # Exactly, not approximately: these numbers go into every bracket payload as they are.
    assert [t.mmr for t in tiers] == [0.004, 0.005, 0.0065, 0.01]
    assert [t.deduction for t in tiers] == [0, 50, 950, 11450]


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["accounts"]["a"].update(exchange="kraken"), "accounts.a.exchange"),
        (lambda d: d["accounts"]["a"].update(wallet={"USDT": -1}), "accounts.a.wallet.USDT"),
        (
            lambda d: d["accounts"]["a"].update(
                positions=[{"symbol": "BTCUSDT", "side": "long", "quantity": 0, "entry_price": 1}]
            ),
            "accounts.a.positions[0].quantity",
        ),
        (
            lambda d: d["accounts"]["a"].update(
                positions=[{"symbol": "ETHUSDT", "side": "long", "quantity": 1, "entry_price": 1}]
            ),
            "accounts.a.positions[0].symbol",
        ),
        (
            lambda d: d["accounts"]["a"].update(
                positions=[{"symbol": "BTCUSDT", "side": "up", "quantity": 1, "entry_price": 1}]
            ),
            "accounts.a.positions[0].side",
        ),
        (lambda d: d["accounts"]["a"].update(colour="red"), "accounts.a.colour"),
        (
            lambda d: d["accounts"]["a"].update(
                positions=[
                    {
                        "symbol": "BTCUSDT",
                        "side": "long",
                        "quantity": 1,
                        "entry_price": 1,
                        "leverage": 12.5,
                    }
                ]
            ),
            "accounts.a.positions[0].leverage",
        ),
        (lambda d: d["instruments"][0].update(venue="ftx"), "instruments[0].venue"),
        (
            lambda d: d["instruments"][0].update(tiers=[{"cap": 10, "mmr": "150%"}]),
            "instruments[0].tiers[0].mmr",
        ),
        (lambda d: d["instruments"][0].update(feed="DOGE"), "instruments[0].feed"),
        (lambda d: d.update(moves=[{"feed": "BTC", "change": "-100%"}]), "moves[0].change"),
        (
            lambda d: d.update(
                moves=[
                    {
                        "feed": "BTC",
                        "change": "-1%",
                        "over": "10s",
                        "recover_over": "10s",
                        "every": "15s",
                    }
                ]
            ),
            "moves[0].every",
        ),
        (lambda d: d.update(faults=[{"kind": "gremlins"}]), "faults[0].kind"),
        (lambda d: d.update(faults=[{"kind": "auth", "account": "nobody"}]), "faults[0].account"),
        (
            lambda d: d.update(limits={"binance_weight_per_minute": -1}),
            "limits.binance_weight_per_minute",
        ),
        (lambda d: d.update(tick="soon"), "tick"),
    ],
)
def test_bad_input_names_the_field(mutate: Any, path: str) -> None:
    data = _minimal()
    mutate(data)
    with pytest.raises(InvalidInput) as raised:
        load_scenario(data)
    assert raised.value.path == path


def test_one_way_mode_refuses_two_positions_on_a_symbol() -> None:
    position = {"symbol": "BTCUSDT", "side": "long", "quantity": 1, "entry_price": 60000}
    with pytest.raises(InvalidInput, match="one-way"):
        load_scenario(_minimal(positions=[position, position | {"side": "short"}]))
    hedge = load_scenario(
        _minimal(position_mode="hedge", positions=[position, position | {"side": "short"}])
    )
    assert len(hedge.accounts[0].positions) == 2


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_move_shape() -> None:
    move = Move(feeds=("BTC",), at=10, change=-0.2, over=10, hold=5, recover_over=10)
    assert [move.factor(t) for t in (0, 10, 15, 20, 25, 30, 35)] == pytest.approx(
        [1, 1, 0.9, 0.8, 0.8, 0.9, 1]
    )
    sticky = Move(feeds=("BTC",), at=0, change=0.5, over=1)
    assert sticky.factor(1000) == 1.5
    cycle = Move(feeds=("BTC",), at=10, change=-0.2, over=10, hold=5, recover_over=10, every=60)
    assert [cycle.factor(t) for t in (15, 75, 135, 160)] == pytest.approx([0.9, 0.9, 0.9, 1])


def test_random_walk_is_seeded_and_continuous() -> None:
    scenario = load_scenario(
        _minimal() | {"feeds": {"BTC": {"price": 60000, "volatility": "0.1%"}}}
    )
    first = PricePaths(scenario.feeds, scenario.moves, seed=3, step=1.0)
    again = PricePaths(scenario.feeds, scenario.moves, seed=3, step=1.0)
    other = PricePaths(scenario.feeds, scenario.moves, seed=4, step=1.0)
    times = [0.0, 0.5, 1.0, 7.25, 100.0, 1023.5, 1024.0, 1024.5, 50_000.7]
    # Queried in a different order, the same seed gives the same path.
    assert [first.price("BTC", t) for t in times] == [
        again.price("BTC", t) for t in reversed(times)
    ][::-1]
    assert [first.price("BTC", t) for t in times] != [other.price("BTC", t) for t in times]
    assert first.price("BTC", 0.5) == pytest.approx(
        (first.price("BTC", 0) + first.price("BTC", 1)) / 2, rel=1e-3
    )


def test_scaled_clock_runs_faster() -> None:
    import time

    from monitor.simulator import ScaledClock

    clock = ScaledClock(50)
    first = clock.now()
    time.sleep(0.1)
    assert (clock.now() - first).total_seconds() == pytest.approx(5, rel=0.5)
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(0)
