"""The calc JSON formats: reading with path-named errors, writing, and round trips."""

from __future__ import annotations

import copy
import json
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.domain.codec import (
    LARGEST_FIGURE,
    SMALLEST_POSITIVE,
    risk_to_json,
    state_from_json,
    state_to_json,
)
from monitor.domain.errors import InvalidInput
from monitor.domain.margin import assess
from monitor.domain.model import AccountRisk, AccountState, PositionRisk
from tests.domain.strategies import pools
from tests.domain.vectors import load, vector_files


def example() -> dict[str, Any]:
    state = load(vector_files()[0])["state"]
    assert isinstance(state, dict)
    return copy.deepcopy(state)


def two_positions() -> dict[str, Any]:
    data = example()
    second = copy.deepcopy(data["positions"][0])
    second["symbol"] = "ETHUSD_PERP"
    data["positions"].append(second)
    return data


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.stem)
def test_vector_states_round_trip(path: Any) -> None:
    state = state_from_json(load(path)["state"])
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state


@settings(max_examples=60, deadline=None)
@given(pools())
def test_any_state_round_trips(state: AccountState) -> None:
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state


@settings(max_examples=40, deadline=None)
@given(pools())
def test_risk_json_carries_every_computed_figure(state: AccountState) -> None:
    risk = assess(state)
    written = json.loads(json.dumps(risk_to_json(risk), allow_nan=False))
    for name in (f.name for f in fields(AccountRisk) if f.name != "positions"):
        assert written[name] == getattr(risk, name), name
    assert len(written["positions"]) == len(risk.positions)
    for row, position in zip(written["positions"], risk.positions, strict=True):
        for name in (f.name for f in fields(PositionRisk)):
            value = getattr(position, name)
            assert row[name] == getattr(value, "value", value), name


def test_numbers_may_be_strings_or_json_numbers() -> None:
    as_strings = example()
    as_numbers = json.loads(
        json.dumps(as_strings),
        object_hook=lambda obj: {
            key: (float(value) if key in {"quantity", "mark_price", "wallet_balance"} else value)
            for key, value in obj.items()
        },
    )
    assert state_from_json(as_strings) == state_from_json(as_numbers)


def test_optional_fields_take_their_defaults() -> None:
    position = state_from_json(two_positions()).positions[1]
    assert (position.hedge, position.taker_fee, position.leverage, position.isolated_margin) == (
        False,
        0.0,
        None,
        None,
    )


def test_output_has_the_documented_fields_in_input_order() -> None:
    data = two_positions()
    risk = risk_to_json(assess(state_from_json(data)))
    for key in (
        "equity",
        "maintenance_margin",
        "margin_ratio",
        "exchange_margin_ratio",
        "account_liquidation_move",
    ):
        assert key in risk
    assert [p["symbol"] for p in risk["positions"]] == [p["symbol"] for p in data["positions"]]
    for position in risk["positions"]:
        for key in (
            "symbol",
            "side",
            "unrealized_pnl",
            "maintenance_margin",
            "liquidation_price",
            "distance_to_liquidation",
        ):
            assert key in position


def _set(path: list[Any], value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _drop(path: list[Any]) -> Any:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


BAD_INPUT = [
    pytest.param(_set(["venue"], "kraken"), "venue: unknown venue 'kraken'", id="unknown-venue"),
    pytest.param(_drop(["wallet_balance"]), "wallet_balance: missing", id="missing-wallet"),
    pytest.param(_set(["positions"], {}), "positions: must be a list", id="positions-not-list"),
    pytest.param(
        _set(["positions", 1, "quantity"], "-3"),
        "positions[1].quantity: must be > 0",
        id="negative-quantity",
    ),
    pytest.param(
        _set(["positions", 1, "quantity"], 0),
        "positions[1].quantity: must be > 0",
        id="zero-quantity",
    ),
    pytest.param(
        _drop(["positions", 0, "mark_price"]),
        "positions[0].mark_price: missing",
        id="missing-mark",
    ),
    pytest.param(
        _set(["positions", 1, "colour"], "red"),
        "positions[1].colour: unknown field",
        id="unknown-key",
    ),
    pytest.param(_set(["leverage"], 5), "leverage: unknown field", id="unknown-top-key"),
    pytest.param(
        _set(["positions", 0, "leverage"], "1e-300"),
        "positions[0].leverage: must be at least 1e-12",
        id="vanishing-leverage",
    ),
    pytest.param(
        _set(["positions", 0, "leverage"], 0),
        "positions[0].leverage: must be > 0",
        id="no-leverage",
    ),
    pytest.param(
        _set(["positions", 1, "margin_mode"], "isolated"),
        "positions[1].isolated_margin: required for an isolated position",
        id="isolated-without-margin",
    ),
    pytest.param(
        _set(["positions", 0, "side"], "up"),
        "positions[0].side: 'up' is not one of: long, short",
        id="bad-side",
    ),
    pytest.param(
        _set(["positions", 0, "entry_price"], "abc"),
        "positions[0].entry_price: 'abc' is not a number",
        id="not-a-number",
    ),
    pytest.param(
        _set(["positions", 0, "entry_price"], "NaN"),
        "positions[0].entry_price: must be a finite number",
        id="nan",
    ),
    pytest.param(
        _set(["positions", 0, "quantity"], "1e308"),
        "positions[0].quantity: must be at most 1e+30 in size",
        id="absurdly-large",
    ),
    pytest.param(
        _set(["positions", 0, "mark_price"], "1e-300"),
        "positions[0].mark_price: must be at least 1e-12",
        id="vanishing-price",
    ),
    pytest.param(
        _set(["positions", 0, "quantity"], True),
        "positions[0].quantity: must be a number or a decimal string",
        id="boolean-number",
    ),
    pytest.param(
        _set(["positions", 0, "hedge"], "yes"),
        "positions[0].hedge: must be true or false",
        id="hedge-not-bool",
    ),
    pytest.param(
        _set(["positions", 0, "tiers"], []),
        "positions[0].tiers: must be a non-empty list of tiers",
        id="no-tiers",
    ),
    pytest.param(
        _set(["positions", 0, "tiers", 0, "mmr"], "1.5"),
        "positions[0].tiers[0].mmr: must be a rate in [0, 1)",
        id="bad-rate",
    ),
    pytest.param(
        _set(
            ["positions", 0, "tiers"],
            [{"floor": "100", "mmr": "0.01"}, {"floor": "50", "mmr": "0.02"}],
        ),
        "positions[0].tiers[1].floor: tiers must be in increasing order of floor",
        id="tiers-out-of-order",
    ),
    pytest.param(
        _set(["positions", 0, "tiers", 0, "cap"], "-1"),
        "positions[0].tiers[0].cap: must be greater than floor",
        id="cap-below-floor",
    ),
    pytest.param(
        _set(["positions", 0, "taker_fee"], "2"),
        "positions[0].taker_fee: must be a rate in [0, 1)",
        id="bad-fee",
    ),
    pytest.param(
        _set(["reported"], {"equity": "1", "margin": 2}),
        "reported.margin: unknown field",
        id="reported-unknown-key",
    ),
    pytest.param(
        _set(["positions", 0], []), "positions[0]: must be a JSON object", id="not-object"
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_INPUT)
def test_bad_input_names_the_field(change: Any, message: str) -> None:
    data = two_positions()
    change(data)
    with pytest.raises(InvalidInput) as raised:
        state_from_json(data)
    assert str(raised.value).startswith(message)


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        state_from_json([])


_PRICES = st.one_of(
    st.floats(SMALLEST_POSITIVE, LARGEST_FIGURE),
    st.sampled_from([SMALLEST_POSITIVE, LARGEST_FIGURE]),
)
_AMOUNTS = st.one_of(
    st.floats(0.0, LARGEST_FIGURE), st.sampled_from([0.0, 5e-324, 1e-300, LARGEST_FIGURE])
)


@settings(max_examples=300, deadline=None)
@given(
    venue=st.sampled_from(["binance-usdm", "binance-coinm", "bybit-linear", "bybit-inverse"]),
    wallet=st.one_of(_AMOUNTS, _AMOUNTS.map(lambda amount: -amount)),
    legs=st.lists(
        st.tuples(
            _PRICES,
            _PRICES,
            _PRICES,
            st.booleans(),
            _AMOUNTS,
            _AMOUNTS,
            _PRICES,
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_every_accepted_input_gives_finite_results(
    venue: str, wallet: float, legs: list[tuple[float, ...]]
) -> None:
    positions: list[dict[str, Any]] = []
    for index, (quantity, entry, mark, isolated, deduction, margin, size) in enumerate(legs):
        positions.append(
            {
                "symbol": f"S{index}",
                "side": "long" if index % 2 else "short",
                "margin_mode": "isolated" if isolated else "cross",
                "quantity": quantity,
                "entry_price": entry,
                "mark_price": mark,
                "tiers": [{"floor": 0, "mmr": "0.5", "deduction": deduction}],
                "contract_size": size,
                **({"isolated_margin": margin} if isolated else {}),
            }
        )
    state = state_from_json({"venue": venue, "wallet_balance": wallet, "positions": positions})
    json.dumps(risk_to_json(assess(state)), allow_nan=False)  # raises on inf or nan
