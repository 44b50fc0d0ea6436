"""Risk in volatility units: the sigma of klines, distances and the account move in sigmas."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monitor.domain.codec import risk_to_json, state_from_json, state_to_json
from monitor.domain.errors import InvalidInput
from monitor.domain.margin import assess
from monitor.domain.model import AccountState, MarginMode
from monitor.domain.volatility import (
    Horizon,
    SymbolVolatility,
    in_sigmas,
    realised_sigma,
)
from tests.support.vectors import two_longs_in_sigmas

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "volatility"


def _vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def test_sigma_of_four_closes_matches_the_hand_computation() -> None:
    vector = _vector("sigma_of_four_closes")
    assert realised_sigma(vector["closes"]) == pytest.approx(
        vector["expected_sigma"], rel=vector["tolerance_relative"]
    )


def test_two_longs_in_sigmas_match_the_hand_computation() -> None:
    vector = _vector("binance_usdm_cross_two_longs_in_sigmas")
    expected = vector["expected"]
    rel = vector["tolerance_relative"]
    result = risk_to_json(assess(state_from_json(vector["state"])))
    sigmas = result["volatility"]
    assert sigmas["hourly_sigma"] == pytest.approx(expected["hourly_sigma"], rel=rel)
    assert sigmas["daily_sigma"] == pytest.approx(expected["daily_sigma"], rel=rel)
    assert sigmas["account_move_sigmas"] == pytest.approx(expected["account_move_sigmas"], rel=rel)
    for position, wanted in zip(result["positions"], expected["distance_sigmas"], strict=True):
        assert position["distance_sigmas"] == pytest.approx(wanted, rel=rel)


def _straightforward_sigma(closes: list[float]) -> float:
    """The textbook formula written out, independent of the module's code path."""
    returns = [math.log(closes[i] / closes[i - 1]) for i in range(1, len(closes))]
    mean = sum(returns) / len(returns)
    return math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))


def test_figures_match_a_straightforward_computation_on_the_same_klines() -> None:
    generator = random.Random(11)
    hourly = {"BTCUSDT": [60000.0], "ETHUSDT": [3000.0]}
    daily = {"BTCUSDT": [60000.0], "ETHUSDT": [3000.0]}
    for series, steps, size in ((hourly, 24, 0.01), (daily, 30, 0.04)):
        for closes in series.values():
            for _ in range(steps):
                closes.append(closes[-1] * math.exp(generator.gauss(0.0, size)))
    vector = _vector("binance_usdm_cross_two_longs_in_sigmas")
    state = state_from_json(vector["state"])
    entries = tuple(
        SymbolVolatility(s, realised_sigma(hourly[s]), realised_sigma(daily[s])) for s in hourly
    )
    risk = assess(replace(state, volatility=entries))
    assert risk.volatility is not None
    expected = {
        s: (_straightforward_sigma(hourly[s]), _straightforward_sigma(daily[s])) for s in hourly
    }
    notionals = [p.quantity * p.mark_price for p in state.positions]
    for horizon, column in ((Horizon.HOURLY, 0), (Horizon.DAILY, 1)):
        pool = sum(
            n * expected[p.symbol][column] for n, p in zip(notionals, state.positions, strict=True)
        ) / sum(notionals)
        assert risk.volatility.pool_sigma(horizon) == pytest.approx(pool, abs=1e-9)
        move = risk.account_liquidation_move
        assert move is not None
        wanted_move = abs(math.log(1 + move)) / pool
        assert risk.volatility.move(horizon) == pytest.approx(wanted_move, abs=1e-9)
        for position, result, sigmas in zip(
            state.positions, risk.positions, risk.volatility.positions, strict=True
        ):
            assert result.liquidation_price is not None
            distance = abs(math.log(result.liquidation_price / position.mark_price))
            wanted = distance / expected[position.symbol][column]
            assert sigmas.of(horizon) == pytest.approx(wanted, abs=1e-9)


def _two_longs(volatility: dict[str, Any]) -> AccountState:
    return state_from_json(two_longs_in_sigmas(volatility))


def test_an_unknown_sigma_makes_the_pool_figure_unknown_not_smaller() -> None:
    state = _two_longs(
        {"BTCUSDT": {"hourly": "0.01", "daily": None}, "ETHUSDT": {"hourly": "0.015"}}
    )
    volatility = assess(state).volatility
    assert volatility is not None
    assert volatility.hourly_sigma is not None
    assert volatility.daily_sigma is None
    assert volatility.move_daily is None
    assert volatility.positions[0].daily is None
    assert volatility.positions[1].daily is None
    assert volatility.positions[0].hourly is not None


def test_a_symbol_missing_from_the_volatility_is_unknown() -> None:
    volatility = assess(_two_longs({"BTCUSDT": {"hourly": "0.01", "daily": "0.03"}})).volatility
    assert volatility is not None
    assert volatility.positions[1].hourly is None
    assert volatility.hourly_sigma is None


def test_isolated_positions_stay_out_of_the_pool_sigma() -> None:
    state = _two_longs({"BTCUSDT": {"hourly": "0.01"}, "ETHUSDT": {"hourly": "0.015"}})
    eth = replace(state.positions[1], margin_mode=MarginMode.ISOLATED, isolated_margin=100000.0)
    volatility = assess(replace(state, positions=(state.positions[0], eth))).volatility
    assert volatility is not None
    assert volatility.hourly_sigma == pytest.approx(0.01)
    assert volatility.positions[1].hourly is not None


def test_without_volatility_the_result_has_no_sigma_figures() -> None:
    state = _two_longs({})
    assert assess(state).volatility is None
    assert "volatility" not in risk_to_json(assess(state))


def test_the_state_round_trips_its_volatility() -> None:
    state = _two_longs({"BTCUSDT": {"hourly": "0.01", "daily": None}})
    assert state_from_json(state_to_json(state)) == state


@pytest.mark.parametrize(
    ("volatility", "path"),
    [
        ({"BTCUSDT": {"hourly": "-0.01"}}, "volatility.BTCUSDT.hourly"),
        ({"BTCUSDT": {"weekly": "0.01"}}, "volatility.BTCUSDT.weekly"),
        ({"BTCUSDT": "0.01"}, "volatility.BTCUSDT"),
        ({"BTCUSDT": {"daily": "x"}}, "volatility.BTCUSDT.daily"),
    ],
)
def test_bad_volatility_input_names_the_field(volatility: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _two_longs(volatility)
    assert caught.value.path == path


def test_sigma_needs_three_positive_closes() -> None:
    with pytest.raises(InvalidInput, match="at least 3 closes"):
        realised_sigma([100.0, 101.0])
    with pytest.raises(InvalidInput) as caught:
        realised_sigma([100.0, 0.0, 101.0])
    assert caught.value.path == "closes[1]"


def test_a_flat_price_gives_no_scale() -> None:
    assert realised_sigma([5.0, 5.0, 5.0]) == 0.0
    assert in_sigmas(0.05, 0.0) is None
    assert in_sigmas(-0.05, 0.025) == pytest.approx(2.0)
