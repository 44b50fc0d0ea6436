"""What-if scenarios: shocks and added margin."""

from __future__ import annotations

import pytest

from monitor.domain.codec import state_from_json
from monitor.domain.errors import InvalidInput
from monitor.domain.margin import assess
from monitor.domain.model import AccountState
from monitor.domain.scenarios import (
    MarginChange,
    Shock,
    add_margin,
    apply_shocks,
    parse_amount,
    parse_margin,
    parse_shock,
)
from tests.support.vectors import VECTOR_DIR, load


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


# ---- pooled accounts: shocks by coin, margin by coin ----


def tiered_btc() -> AccountState:
    """25 BTC collateral and USDT behind a BTCUSDT long and an ETHUSDT short (Bybit UTA)."""
    return state_from_json(load(VECTOR_DIR / "bybit_unified_tiered_btc.json")["state"])


def test_parse_coin_shock() -> None:
    assert parse_shock("BTC=-10%") == Shock("BTC", pytest.approx(-0.10))  # type: ignore[arg-type]


def test_coin_shock_moves_its_marks_and_its_collateral() -> None:
    state = tiered_btc()
    shocked = apply_shocks(state, [Shock("BTC", -0.10)])
    assert shocked.positions[0].mark_price == pytest.approx(27_000.0)
    assert shocked.positions[1].mark_price == state.positions[1].mark_price  # ETHUSDT
    btc, usdt = shocked.collateral
    assert btc.price == pytest.approx(27_000.0)
    assert btc.quantity == 25.0
    assert usdt == state.collateral[1]


def test_symbol_shock_moves_the_mark_but_not_the_collateral() -> None:
    state = tiered_btc()
    shocked = apply_shocks(state, [Shock("BTCUSDT", -0.10)])
    assert shocked.positions[0].mark_price == pytest.approx(27_000.0)
    assert shocked.collateral == state.collateral


def test_all_moves_every_mark_and_every_coin_but_stablecoins() -> None:
    state = tiered_btc()
    shocked = apply_shocks(state, [Shock("all", -0.2), Shock("BTC", 0.1)])
    assert shocked.positions[0].mark_price == pytest.approx(30_000 * 0.8 * 1.1)
    assert shocked.positions[1].mark_price == pytest.approx(2_000 * 0.8)
    assert shocked.collateral[0].price == pytest.approx(30_000 * 0.8 * 1.1)
    assert shocked.collateral[1].price == 1.0


def test_a_stablecoin_can_be_shocked_by_name() -> None:
    # A depeg what-if: only that coin's USD price moves (PnL and margin settled in it follow).
    state = tiered_btc()
    shocked = apply_shocks(state, [Shock("USDT", -0.05)])
    assert shocked.collateral[1].price == pytest.approx(0.95)
    assert [p.mark_price for p in shocked.positions] == [p.mark_price for p in state.positions]


def test_coin_shock_on_a_single_asset_state_reads_the_underlying_from_the_symbol() -> None:
    state = two_longs()
    shocked = apply_shocks(state, [Shock("ETH", 0.5)])
    assert shocked.positions[0].mark_price == state.positions[0].mark_price
    assert shocked.positions[1].mark_price == pytest.approx(state.positions[1].mark_price * 1.5)


def test_an_unknown_name_lists_what_the_state_holds() -> None:
    with pytest.raises(InvalidInput) as raised:
        apply_shocks(tiered_btc(), [Shock("SOL", -0.1)])
    assert raised.value.path == "--shock"
    assert raised.value.problem == (
        "no position in 'SOL' and no such underlying or collateral coin "
        "(positions: BTCUSDT, ETHUSDT; coins: BTC, ETH, USDT)"
    )


def test_shocking_a_pool_by_its_account_move_reaches_liquidation() -> None:
    state = tiered_btc()
    move = assess(state).account_liquidation_move
    assert move is not None
    shocked = assess(apply_shocks(state, [Shock("all", move)]))
    assert shocked.margin_ratio == pytest.approx(state.liquidation_ratio, rel=1e-9)


def test_shocking_a_coin_to_a_liquidation_price_reaches_liquidation() -> None:
    # The liquidation price of BTCUSDT moves the BTC collateral too; so does a BTC shock.
    state = tiered_btc()
    price = assess(state).positions[0].liquidation_price
    assert price is not None
    move = price / state.positions[0].mark_price - 1.0
    assert assess(apply_shocks(state, [Shock("BTC", move)])).margin_ratio == pytest.approx(
        1.0, rel=1e-9
    )
    # The symbol alone is not enough: the BTC collateral still holds its value.
    alone = assess(apply_shocks(state, [Shock("BTCUSDT", move)])).margin_ratio
    assert alone is not None
    assert alone > 5.0


def test_margin_goes_to_the_named_coin_of_a_pool() -> None:
    state = tiered_btc()
    before = assess(state)
    after = add_margin(state, 5_000.0, asset="USDT")
    assert after.collateral[1].quantity == 7_000.0
    assert assess(after).equity == pytest.approx(before.equity + 5_000.0)
    half = add_margin(state, -0.5, asset="BTC")
    assert half.collateral[0].quantity == 24.5


@pytest.mark.parametrize(
    ("amount", "asset", "message"),
    [
        (5_000.0, None, "a pooled account holds several coins: name one, e.g. BTC=5000"),
        (5_000.0, "USDC", "USDC is not in collateral (has: BTC, USDT)"),
        (-26.0, "BTC", "removing 26 BTC leaves a negative balance (balance 25)"),
    ],
)
def test_margin_on_a_pool_must_name_a_held_coin(
    amount: float, asset: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        add_margin(tiered_btc(), amount, asset=asset)
    assert raised.value.path == "--add-margin"
    assert raised.value.problem.startswith(message)


def test_single_asset_margin_may_name_its_own_coin_only() -> None:
    state = two_longs()
    assert add_margin(state, 10.0, asset="USDT").wallet_balance == state.wallet_balance + 10.0
    with pytest.raises(InvalidInput, match="this pool holds USDT, not USDC"):
        add_margin(state, 10.0, asset="USDC")


@pytest.mark.parametrize(
    ("text", "change"),
    [
        ("500", MarginChange(500.0)),
        ("-250.5", MarginChange(-250.5)),
        ("USDC=5000", MarginChange(5000.0, "USDC")),
        (" BTC = -0.1 ", MarginChange(-0.1, "BTC")),
    ],
)
def test_parse_margin(text: str, change: MarginChange) -> None:
    assert parse_margin(text) == change


@pytest.mark.parametrize("text", ["=5", "USDC=", "USDC=abc", "USDC=nan"])
def test_bad_margin_names_the_argument(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_margin(text)
    assert raised.value.path == "--add-margin"
