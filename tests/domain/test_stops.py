"""Protective stops: the hand-computed cases in tests/vectors/stops and the order-matching rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.domain.codec import risk_to_json, state_from_json, state_to_json
from monitor.domain.errors import InvalidInput
from monitor.domain.margin import assess
from tests.support.vectors import VECTOR_DIR, load

STOP_VECTORS = sorted((VECTOR_DIR / "stops").glob("*.json"))
FIELDS = ("stop_price", "stop_quantity_covered", "loss_at_stop", "loss_at_stop_of_equity")


@pytest.mark.parametrize("path", STOP_VECTORS, ids=lambda path: path.stem)
def test_stop_figures_match_hand_computed_cases(path: Path) -> None:
    vector = load(path)
    assert vector["cases"], path
    for number, case in enumerate(vector["cases"]):
        state = state_from_json(case["state"])
        document = risk_to_json(assess(state), state)
        for index, (got, wanted) in enumerate(
            zip(document["positions"], case["expected"]["positions"], strict=True)
        ):
            where = (path.stem, number, index)
            assert got["stop_status"] == wanted["stop_status"], where
            for field in (*FIELDS, "liquidation_price"):
                if field not in wanted:
                    continue
                if wanted[field] is None:
                    assert got[field] is None, (where, field)
                else:
                    assert got[field] == pytest.approx(float(wanted[field]), rel=1e-9), (
                        where,
                        field,
                    )


def _state(orders: list[dict[str, Any]] | None, side: str = "short") -> dict[str, Any]:
    state: dict[str, Any] = {
        "venue": "bybit-inverse",
        "wallet_balance": "0.2",
        "positions": [
            {
                "symbol": "BTCUSD",
                "side": side,
                "margin_mode": "cross",
                "quantity": "20000",
                "contract_size": "1",
                "entry_price": "40000",
                "mark_price": "40000",
                "tiers": [{"floor": 0, "cap": None, "mmr": "0.005"}],
            }
        ],
    }
    if orders is not None:
        state["protective_orders"] = orders
    return state


def test_an_inverse_short_loses_coins_at_its_stop() -> None:
    # 20000 contracts of 1 USD short from 40000, stopped at 50000: 20000*(1/50000-1/40000) BTC.
    state = state_from_json(
        _state(
            [
                {
                    "symbol": "BTCUSD",
                    "side": "buy",
                    "kind": "stop",
                    "trigger_price": 50000,
                    "reduce_only": True,
                }
            ]
        )
    )
    risk = assess(state)
    (stop,) = risk.stops
    assert stop.status.value == "ok"
    assert stop.loss_at_stop == pytest.approx(20000 * (1 / 40000 - 1 / 50000) * -1, rel=1e-12)
    assert stop.loss_at_stop_of_equity == pytest.approx(-0.5, rel=1e-12)
    assert risk.positions[0].liquidation_price is not None
    # Moving the stop above the liquidation price: a short's stop >= liquidation never fires.
    beyond = risk.positions[0].liquidation_price * 1.01
    state = state_from_json(
        _state(
            [
                {
                    "symbol": "BTCUSD",
                    "side": "buy",
                    "kind": "stop",
                    "trigger_price": beyond,
                    "reduce_only": True,
                }
            ]
        )
    )
    assert assess(state).stops[0].status.value == "beyond_liquidation"


def test_without_orders_a_result_keeps_its_shape_and_a_reader_shows_unknown() -> None:
    state = state_from_json(_state(None))
    risk = assess(state)
    assert "stop_status" not in risk_to_json(risk, state)["positions"][0]
    shown = risk_to_json(risk, state, stops=True)["positions"][0]
    assert shown["stop_status"] == "unknown"
    assert shown["stop_price"] is None


def test_a_bad_order_names_its_field() -> None:
    with pytest.raises(InvalidInput) as error:
        state_from_json(
            _state([{"symbol": "BTCUSD", "side": "buy", "kind": "stop-ish", "trigger_price": 1}])
        )
    assert error.value.path == "protective_orders[0].kind"
    with pytest.raises(InvalidInput) as error:
        state_from_json(
            _state([{"symbol": "BTCUSD", "side": "buy", "kind": "stop", "trigger_price": -1}])
        )
    assert error.value.path == "protective_orders[0].trigger_price"


@pytest.mark.parametrize("path", STOP_VECTORS, ids=lambda path: path.stem)
def test_states_with_orders_round_trip(path: Path) -> None:
    for case in load(path)["cases"]:
        state = state_from_json(case["state"])
        assert state.protective_orders
        assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state
