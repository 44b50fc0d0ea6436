"""What-if scenarios: shocks and added margin."""

from __future__ import annotations

import pytest

from monitor.domain.codec import state_from_json
from monitor.domain.errors import InvalidInput
from monitor.domain.margin import assess
from monitor.domain.model import AccountState
from monitor.domain.scenarios import Shock, add_margin, apply_shocks, parse_amount, parse_shock
from tests.domain.vectors import VECTOR_DIR, load


def two_longs() -> AccountState:
    return state_from_json(load(VECTOR_DIR / "binance_usdm_cross_two_longs.json")["state"])


@pytest.mark.parametrize(
    ("text", "shock"),
    [
        ("BTCUSDT=-10%", Shock("BTCUSDT", -0.10)),
        ("all=-5%", Shock("all", -0.05)),
        (" ETHUSDT = 20% ", Shock("ETHUSDT", 0.2)),
        ("BTCUSDT=+25%", Shock("BTCUSDT", 0.25)),
    ],
)
def test_parse_shock(text: str, shock: Shock) -> None:
    parsed = parse_shock(text)
    assert parsed.symbol == shock.symbol
    assert parsed.move == pytest.approx(shock.move)


@pytest.mark.parametrize(
    "text", ["BTCUSDT", "=-5%", "BTCUSDT=", "BTCUSDT=down", "all=-100%", "ETHUSDT=0.2"]
)
def test_bad_shock_names_the_argument(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_shock(text)
    assert raised.value.path == "--shock"


def test_symbol_shock_moves_only_that_mark_and_shocks_compound() -> None:
    state = two_longs()
    shocked = apply_shocks(state, [Shock("BTCUSDT", -0.10), Shock("all", -0.05)])
    btc, eth = state.positions
    assert shocked.positions[0].mark_price == pytest.approx(btc.mark_price * 0.9 * 0.95)
    assert shocked.positions[1].mark_price == pytest.approx(eth.mark_price * 0.95)
    assert shocked.positions[0].entry_price == btc.entry_price


def test_unknown_symbol_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(InvalidInput, match="no position in 'BTCUSD'") as raised:
        apply_shocks(two_longs(), [Shock("BTCUSD", -0.1)])
    assert raised.value.path == "--shock"


def test_shocking_everything_by_the_account_move_reaches_maintenance_margin() -> None:
    state = two_longs()
    move = assess(state).account_liquidation_move
    assert move is not None
    shocked = assess(apply_shocks(state, [Shock("all", move)]))
    assert shocked.margin_ratio == pytest.approx(1.0, rel=1e-9)


def test_add_and_remove_margin() -> None:
    state = two_longs()
    before = assess(state)
    after = assess(add_margin(state, 100_000.0))
    assert after.equity == pytest.approx(before.equity + 100_000.0)
    assert after.account_liquidation_move is not None
    assert before.account_liquidation_move is not None
    assert after.account_liquidation_move < before.account_liquidation_move
    removed = add_margin(state, -state.wallet_balance)
    assert removed.wallet_balance == 0.0
    with pytest.raises(InvalidInput) as raised:
        add_margin(state, -state.wallet_balance - 1)
    assert raised.value.path == "--add-margin"


def test_exchange_figures_are_dropped_from_scenarios() -> None:
    data = load(VECTOR_DIR / "binance_usdm_cross_two_longs.json")["state"]
    data["positions"][0]["exchange_liquidation_price"] = "26316.89"
    data["reported"] = {"equity": "1"}
    state = state_from_json(data)
    for changed in (apply_shocks(state, [Shock("all", -0.01)]), add_margin(state, 1.0)):
        assert changed.positions[0].exchange_liquidation_price is None
        assert changed.reported.equity is None


@pytest.mark.parametrize("text", ["abc", "nan", "inf", ""])
def test_bad_amount(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_amount(text)
    assert raised.value.path == "--add-margin"
