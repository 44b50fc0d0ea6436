"""The calc JSON formats: reading with path-named errors, writing, and round trips."""

from __future__ import annotations

import copy
import json
from dataclasses import fields
from typing import Any

import hypothesis
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
from monitor.domain.model import (
    AccountRisk,
    AccountState,
    Collateral,
    CollateralTier,
    MarginMode,
    PoolModel,
    Position,
    PositionRisk,
    Side,
    Tier,
    Venue,
    VenueTerm,
)
from tests.domain.margin.strategies import pools
from tests.support.vectors import VECTOR_DIR, load, vector_files


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


# Checked on their own: positions row by row (stops in their rows, tests/domain/test_stops.py),
# collateral values by coin (pooled states only), sigma figures in test_volatility.
SEPARATE = {"positions", "collateral_values", "volatility", "stops"}


@settings(max_examples=40, deadline=None)
@given(pools())
def test_risk_json_carries_every_computed_figure(state: AccountState) -> None:
    risk = assess(state)
    written = json.loads(json.dumps(risk_to_json(risk, state), allow_nan=False))
    for name in (f.name for f in fields(AccountRisk) if f.name not in SEPARATE):
        assert written[name] == getattr(risk, name), name
    # A single-asset result keeps the shape it always had: no pooled fields.
    assert not {"collateral_values", "model", "liquidation_ratio"} & set(written)
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
# A coin-margined long of 1e30-sized contracts whose liquidation point in 1/price is so small that
# the price itself overflowed to infinity (found by this test).
@hypothesis.example(
    venue="binance-coinm",
    wallet=0.0,
    legs=[
        (1.0, 1.0, 1.0, False, 0.0, 0.0, 1.0),
        (1e-12, 0.5, 1.0, False, 1e-300, 0.0, 9.999999999999997e29),
        (1e-12, 0.5, 1116071428571429.0, False, 0.0, 0.0, 1e30),
    ],
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


# ---- pooled accounts (several collateral coins in USD) ----

POOLED_VECTORS = [
    "binance_multi_assets_faq",
    "bybit_unified_tiered_btc",
    "bybit_unified_usdc_behind_usdt_long",
]


def pooled(name: str = "bybit_unified_tiered_btc") -> dict[str, Any]:
    state = load(VECTOR_DIR / f"{name}.json")["state"]
    assert isinstance(state, dict)
    return copy.deepcopy(state)


_COINS = st.sampled_from(["BTC", "ETH", "SOL", "USDT", "USDC", "FDUSD"])


@st.composite
def pooled_states(draw: st.DrawFn) -> AccountState:
    """Pooled states as a venue adapter could build them: stable settlement coins in the collateral,
    other coins with flat or tiered ratios, optional venue terms."""
    names = draw(st.lists(_COINS, min_size=1, max_size=4, unique=True))
    for settle in ("USDT", "USDC"):
        if settle not in names:
            names.append(settle)
    collateral = []
    for name in names:
        floors = draw(st.lists(st.floats(0.5, 1e6), max_size=3, unique=True).map(sorted))
        ratios = [CollateralTier(0.0, draw(st.floats(0.0, 1.0)))]
        ratios += [CollateralTier(floor, draw(st.floats(0.0, 1.0))) for floor in floors]
        collateral.append(
            Collateral(
                asset=name,
                quantity=draw(st.floats(-1e6, 1e6)),
                price=draw(st.floats(1e-4, 1e5)),
                ratios=tuple(ratios),
                liability_rate=draw(st.floats(0.5, 1.5)),
                stable=name.startswith("USD") or name == "FDUSD",
            )
        )
    positions = []
    for index in range(draw(st.integers(0, 3))):
        settle = draw(st.sampled_from(["USDT", "USDC"]))
        underlying = draw(st.sampled_from(["BTC", "ETH", "XRP"]))
        positions.append(
            Position(
                symbol=f"{underlying}{settle}",
                side=draw(st.sampled_from(list(Side))),
                margin_mode=MarginMode.CROSS,
                quantity=draw(st.floats(1e-3, 1e3)),
                entry_price=draw(st.floats(1.0, 1e5)),
                mark_price=draw(st.floats(1.0, 1e5)),
                tiers=(Tier(0.0, None, draw(st.floats(0.001, 0.1)), 0.0),),
                leverage=draw(st.none() | st.floats(1.0, 100.0)),
                taker_fee=draw(st.sampled_from([0.0, 0.00055])),
                settle_asset=settle,
                underlying=draw(st.sampled_from([underlying, None])),
                hedge=index == 99,
            )
        )
    terms = draw(
        st.lists(
            st.builds(
                VenueTerm,
                name=st.sampled_from(["margin loans", "options"]),
                equity=st.floats(-1e4, 1e4),
                maintenance_margin=st.floats(0.0, 1e4),
            ),
            max_size=2,
        )
    )
    return AccountState(
        venue=draw(st.sampled_from([Venue.BINANCE_USDM, Venue.BYBIT_LINEAR])),
        wallet_balance=draw(st.floats(0.0, 1e6)),
        positions=tuple(positions),
        asset="USD",
        model=draw(
            st.sampled_from([PoolModel.MULTI_ASSETS, PoolModel.UNIFIED, PoolModel.PORTFOLIO])
        ),
        collateral=tuple(collateral),
        liquidation_ratio=draw(st.sampled_from([1.0, 1.05])),
        venue_terms=tuple(terms),
    )


@pytest.mark.parametrize("name", POOLED_VECTORS)
def test_pooled_vectors_read_as_pooled_states(name: str) -> None:
    state = state_from_json(pooled(name))
    assert state.pooled
    assert state.asset == "USD"
    assert state.wallet_balance == 0.0
    assert state.model in (PoolModel.MULTI_ASSETS, PoolModel.UNIFIED)
    assert all(position.settle_asset in {"USDT", "USDC"} for position in state.positions)


@settings(max_examples=80, deadline=None)
@given(pooled_states())
def test_any_pooled_state_round_trips(state: AccountState) -> None:
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state


@settings(max_examples=40, deadline=None)
@given(pooled_states())
def test_pooled_risk_json_names_every_coin_value(state: AccountState) -> None:
    risk = assess(state)
    written = json.loads(json.dumps(risk_to_json(risk, state), allow_nan=False))
    for name in (f.name for f in fields(AccountRisk) if f.name not in SEPARATE):
        assert written[name] == getattr(risk, name), name
    assert written["model"] == state.model.value
    assert written["liquidation_ratio"] == state.liquidation_ratio
    assert written["collateral_values"] == [
        {"asset": coin.asset, "value": value}
        for coin, value in zip(state.collateral, risk.collateral_values, strict=True)
    ]


def test_pooled_defaults() -> None:
    data = pooled()
    state = state_from_json(data)
    btc, usdt = state.collateral
    assert (btc.stable, usdt.stable) == (False, True)
    assert usdt.ratios == (CollateralTier(0.0, 1.0),)
    assert (btc.liability_rate, usdt.liability_rate) == (1.0, 1.0)
    assert [tier.floor for tier in btc.ratios] == [0, 10, 20, 30, 40, 50]
    assert state.liquidation_ratio == 1.0
    assert state.venue_terms == ()
    # Derived from the symbols: BTCUSDT settles in USDT and its mark is BTC's price.
    assert [(p.settle_asset, p.underlying) for p in state.positions] == [
        ("USDT", "BTC"),
        ("USDT", "ETH"),
    ]
    del data["model"]
    assert state_from_json(data).model is PoolModel.UNIFIED
    data["venue"] = "binance-usdm"
    assert state_from_json(data).model is PoolModel.MULTI_ASSETS


@pytest.mark.parametrize(
    ("symbol", "settle", "underlying"),
    [
        ("BTCUSDC", "USDC", "BTC"),
        ("ETHPERP", "USDC", "ETH"),
        ("BTCUSDT_250328", "USDT", "BTC"),
        ("BNBFDUSD", "FDUSD", "BNB"),
        ("1000PEPEUSDT", "USDT", "1000PEPE"),
    ],
)
def test_settlement_coin_and_underlying_come_from_the_symbol(
    symbol: str, settle: str, underlying: str
) -> None:
    data = pooled()
    data["collateral"].append({"asset": settle, "quantity": 0, "price": 1})
    if settle == "USDT":
        data["collateral"].pop()
    data["positions"][0]["symbol"] = symbol
    position = state_from_json(data).positions[0]
    assert (position.settle_asset, position.underlying) == (settle, underlying)


def test_explicit_coins_win_and_null_means_none() -> None:
    data = pooled()
    data["positions"][0].update(settle_asset="USDT", underlying="WBTC")
    data["positions"][1].update(settle_asset=None, underlying=None)
    data["asset"] = "USDT"
    first, second = state_from_json(data).positions
    assert (first.settle_asset, first.underlying) == ("USDT", "WBTC")
    assert (second.settle_asset, second.underlying) == (None, None)


def test_single_asset_states_keep_their_shape() -> None:
    data = example()
    state = state_from_json(data)
    assert state.model is PoolModel.SINGLE_ASSET
    assert state.positions[0].settle_asset is None  # nothing derived outside a pool
    written = state_to_json(state)
    assert not {"model", "collateral", "liquidation_ratio", "venue_terms"} & set(written)
    assert not {"settle_asset", "underlying"} & set(written["positions"][0])


def test_binance_portfolio_margin_liquidates_at_105_percent_unless_told() -> None:
    data = pooled("binance_multi_assets_faq")
    data["model"] = "portfolio"
    assert state_from_json(data).liquidation_ratio == 1.05
    data["venue"] = "bybit-linear"
    assert state_from_json(data).liquidation_ratio == 1.0
    data["liquidation_ratio"] = "1.1"
    assert state_from_json(data).liquidation_ratio == 1.1


def test_venue_terms_are_read() -> None:
    data = pooled()
    data["venue_terms"] = [{"name": "margin loans", "maintenance_margin": "120.5"}]
    (term,) = state_from_json(data).venue_terms
    assert term == VenueTerm("margin loans", 0.0, 120.5)


def test_a_pool_may_be_given_a_wallet_total() -> None:
    data = pooled()
    data["wallet_balance"] = "729000"
    assert state_from_json(data).wallet_balance == 729000.0


POOLED_BAD_INPUT = [
    pytest.param(
        _set(["positions", 1, "settle_asset"], "USDC"),
        'positions[1].settle_asset: "USDC" is not in collateral (has: BTC, USDT)',
        id="settle-coin-not-held",
    ),
    pytest.param(
        _set(["positions", 0, "symbol"], "BTCUSDC"),
        'positions[0].settle_asset: "USDC" is not in collateral (has: BTC, USDT)',
        id="derived-settle-coin-not-held",
    ),
    pytest.param(
        _set(["positions", 0, "symbol"], "BTC-26DEC25"),
        "positions[0].settle_asset: cannot tell the settlement coin of 'BTC-26DEC25'",
        id="settle-coin-unknown",
    ),
    pytest.param(
        _set(["model"], "single-asset"),
        "model: a single-asset account has no collateral list",
        id="single-asset-with-collateral",
    ),
    pytest.param(_set(["model"], "shared"), "model: 'shared' is not one of", id="bad-model"),
    pytest.param(_set(["collateral"], []), "collateral: must be a non-empty list", id="empty"),
    pytest.param(
        _set(["venue"], "bybit-inverse"),
        "collateral: bybit-inverse contracts are margined in their own coin",
        id="inverse-pool",
    ),
    pytest.param(
        _set(["collateral", 1, "asset"], "BTC"),
        "collateral[1].asset: 'BTC' is listed twice",
        id="duplicate-coin",
    ),
    pytest.param(
        _set(["collateral", 1, "ratio"], "1.2"),
        "collateral[1].ratio: must be a collateral value ratio in [0, 1]",
        id="ratio-above-1",
    ),
    pytest.param(
        _set(["collateral", 0, "ratios", 2, "ratio"], "-0.1"),
        "collateral[0].ratios[2].ratio: must be a collateral value ratio in [0, 1]",
        id="negative-tier-ratio",
    ),
    pytest.param(
        _set(["collateral", 0, "ratios", 2, "floor"], "5"),
        "collateral[0].ratios[2].floor: tiers must be in increasing order of floor",
        id="tiers-out-of-order",
    ),
    pytest.param(
        _set(["collateral", 0, "ratios", 0, "floor"], "1"),
        "collateral[0].ratios[0].floor: the first tier starts at quantity 0",
        id="first-tier-not-at-0",
    ),
    pytest.param(
        _set(["collateral", 0, "ratio"], "0.9"),
        "collateral[0].ratios: give either ratio or ratios, not both",
        id="ratio-and-ratios",
    ),
    pytest.param(
        _set(["collateral", 0, "price"], "0"),
        "collateral[0].price: must be > 0",
        id="zero-price",
    ),
    pytest.param(_drop(["collateral", 0, "price"]), "collateral[0].price: missing", id="no-price"),
    pytest.param(
        _set(["collateral", 1, "liability_rate"], "0"),
        "collateral[1].liability_rate: must be > 0",
        id="zero-liability-rate",
    ),
    pytest.param(
        _set(["collateral", 1, "stable"], "yes"),
        "collateral[1].stable: must be true or false",
        id="stable-not-bool",
    ),
    pytest.param(
        _set(["collateral", 1, "haircut"], 0.1),
        "collateral[1].haircut: unknown field",
        id="unknown-coin-key",
    ),
    pytest.param(
        _set(["liquidation_ratio"], "0"), "liquidation_ratio: must be > 0", id="zero-trigger"
    ),
    pytest.param(
        _set(["venue_terms"], [{"name": "options", "maintenance_margin": "-1"}]),
        "venue_terms[0].maintenance_margin: must be >= 0",
        id="negative-venue-margin",
    ),
    pytest.param(
        _set(["venue_terms"], [{"equity": "1"}]),
        "venue_terms[0].name: missing",
        id="venue-term-without-name",
    ),
    pytest.param(
        _set(["positions", 0, "underlying"], 7),
        "positions[0].underlying: must be a non-empty string",
        id="underlying-not-text",
    ),
]


@pytest.mark.parametrize(("change", "message"), POOLED_BAD_INPUT)
def test_bad_pooled_input_names_the_field(change: Any, message: str) -> None:
    data = pooled()
    change(data)
    with pytest.raises(InvalidInput) as raised:
        state_from_json(data)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            _set(["model"], "unified"),
            "collateral: a unified account needs its collateral coins",
            id="unified-without-coins",
        ),
        pytest.param(
            _set(["liquidation_ratio"], "1.05"),
            "liquidation_ratio: only a pooled account",
            id="single-asset-trigger",
        ),
        pytest.param(
            _set(["venue_terms"], [{"name": "options"}]),
            "venue_terms: venue figures belong to a pooled account",
            id="single-asset-venue-terms",
        ),
    ],
)
def test_pooled_keys_on_a_single_asset_state_are_refused(change: Any, message: str) -> None:
    data = two_positions()
    change(data)
    with pytest.raises(InvalidInput) as raised:
        state_from_json(data)
    assert str(raised.value).startswith(message)


def test_an_isolated_position_of_a_pool_needs_no_collateral_coin() -> None:
    data = pooled()
    data["positions"][0].update(symbol="SOLUSDC", margin_mode="isolated", isolated_margin="500")
    position = state_from_json(data).positions[0]
    assert position.settle_asset == "USDC"
