"""`portfolio-monitor calc`: the real console script once, CliRunner for the rest."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.domain.codec import risk_to_json, state_from_json
from monitor.domain.margin import assess
from monitor.domain.scenarios import Shock, add_margin, apply_shocks
from monitor.domain.units import format_percent, format_price
from tests.support.vectors import VECTOR_DIR, load

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "monitor" / "examples" / "binance_cross_two_longs.json"
)
CONSOLE_SCRIPT = Path(sys.executable).parent / "portfolio-monitor"


def vector_state(name: str) -> dict[str, Any]:
    state = load(VECTOR_DIR / f"{name}.json")["state"]
    assert isinstance(state, dict)
    return state


def expected(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(risk_to_json(assess(state_from_json(state)))))


def invoke(args: list[str], stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, ["calc", *args], input=stdin)


def write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_console_script_reads_stdin_and_prints_json() -> None:
    text = EXAMPLE.read_text()
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "calc", "-"],
        input=text,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected(json.loads(text))


def test_console_script_bad_input_exits_2_with_the_path_on_stderr(tmp_path: Path) -> None:
    data = vector_state("binance_usdm_cross_two_longs")
    data["positions"][1]["quantity"] = "-1"
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "calc", write(tmp_path, data)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "positions[1].quantity: must be > 0" in done.stderr


def test_example_account_looks_safe_per_position_but_not_as_a_whole() -> None:
    result = invoke(["--format", "json", str(EXAMPLE)])
    assert result.exit_code == 0
    risk = json.loads(result.stdout)
    nearest = min(p["distance_to_liquidation"] for p in risk["positions"])
    assert abs(risk["account_liquidation_move"]) < nearest / 1.5


def test_json_is_the_default_when_piped_and_matches_the_engine(tmp_path: Path) -> None:
    data = vector_state("binance_coinm_cross_long")
    result = invoke([write(tmp_path, data)])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == expected(data)


def test_table_shows_positions_and_the_pool() -> None:
    vector = load(VECTOR_DIR / "binance_usdm_cross_two_longs.json")
    result = invoke(["--format", "table", str(EXAMPLE)])
    assert result.exit_code == 0
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert symbol in result.stdout
    computed = json.loads(invoke(["--format", "json", str(EXAMPLE)]).stdout)["positions"]
    for price, position in zip(vector["expected"]["liquidation_price"], computed, strict=True):
        assert round(position["liquidation_price"], 2) == float(price)
        assert format_price(position["liquidation_price"]) in result.stdout
    move = vector["expected"]["derived"]["account_liquidation_move"]
    assert format_percent(move, signed=True) in result.stdout
    assert "margin ratio" in result.stdout
    assert "exchange ratio" in result.stdout


def test_a_narrow_terminal_wraps_cells_instead_of_cutting_them() -> None:
    result = CliRunner().invoke(
        app, ["calc", "--format", "table", str(EXAMPLE)], env={"COLUMNS": "60"}
    )
    assert result.exit_code == 0
    assert "…" not in result.stdout  # "BTCUS…" could be BTCUSDT or BTCUSDC; "26,31…" any price
    assert "BTCUSD" in result.stdout


def test_array_input_gives_an_array_of_results(tmp_path: Path) -> None:
    states = [vector_state("binance_usdm_hedge_cross"), vector_state("bybit_linear_isolated")]
    result = invoke(["--format", "json", write(tmp_path, states)])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [expected(state) for state in states]


def test_array_table_labels_each_state(tmp_path: Path) -> None:
    states = [vector_state("binance_usdm_hedge_cross"), vector_state("bybit_linear_isolated")]
    result = invoke(["--format", "table", write(tmp_path, states)])
    assert result.exit_code == 0
    assert "[0] binance-usdm" in result.stdout
    assert "[1] bybit-linear" in result.stdout


def test_stdin_dash() -> None:
    result = invoke(["--format", "json", "-"], stdin=EXAMPLE.read_text())
    assert result.exit_code == 0
    assert json.loads(result.stdout) == expected(json.loads(EXAMPLE.read_text()))


def test_shocks_and_added_margin_change_the_state_before_computing() -> None:
    data = json.loads(EXAMPLE.read_text())
    result = invoke(
        [
            "--format",
            "json",
            "--shock",
            "BTCUSDT=-10%",
            "--shock",
            "all=-2%",
            "--add-margin",
            "-50000",
            str(EXAMPLE),
        ]
    )
    assert result.exit_code == 0, result.stderr
    scenario = add_margin(
        apply_shocks(state_from_json(data), [Shock("BTCUSDT", -0.1), Shock("all", -0.02)]),
        -50_000.0,
    )
    assert json.loads(result.stdout) == json.loads(json.dumps(risk_to_json(assess(scenario))))


def _bad_quantity_array() -> list[dict[str, Any]]:
    good = vector_state("binance_usdm_hedge_cross")
    bad = vector_state("binance_usdm_cross_two_longs")
    bad["positions"][1]["quantity"] = "0"
    return [good, good, good, bad]


def _missing_field() -> dict[str, Any]:
    data = vector_state("binance_usdm_cross_two_longs")
    del data["positions"][0]["entry_price"]
    return data


def _unknown_venue() -> dict[str, Any]:
    data = vector_state("binance_usdm_cross_two_longs")
    data["venue"] = "ftx"
    return data


BAD_FILES = [
    pytest.param(
        _bad_quantity_array(), [], "[3].positions[1].quantity: must be > 0", id="array-path"
    ),
    pytest.param(_missing_field(), [], "positions[0].entry_price: missing", id="missing-field"),
    pytest.param(_unknown_venue(), [], "venue: unknown venue 'ftx'", id="unknown-venue"),
    pytest.param(
        vector_state("binance_usdm_cross_two_longs"),
        ["--shock", "BTCUSD=-10%"],
        "--shock: no position in 'BTCUSD'",
        id="shock-unknown-symbol",
    ),
    pytest.param(
        vector_state("binance_usdm_cross_two_longs"),
        ["--shock", "BTCUSDT-10%"],
        "--shock: 'BTCUSDT-10%' is not SYMBOL=MOVE",
        id="shock-syntax",
    ),
    pytest.param(
        vector_state("binance_usdm_cross_two_longs"),
        ["--shock", "all=5"],
        "--shock: 'all=5': write the move as a percentage, e.g. all=-5%",
        id="shock-without-percent-sign",
    ),
    pytest.param(
        vector_state("binance_usdm_cross_two_longs"),
        ["--add-margin", "lots"],
        "--add-margin: 'lots' is not a number",
        id="add-margin-not-number",
    ),
    pytest.param(
        vector_state("binance_usdm_cross_two_longs"),
        ["--add-margin", "-99999999"],
        "--add-margin: removing 99,999,999.00 leaves a negative wallet (balance 1,535,443.01)",
        id="add-margin-too-much",
    ),
    pytest.param(
        vector_state("binance_usdm_cross_two_longs"),
        ["--format", "csv"],
        "--format: calc prints table or json",
        id="csv",
    ),
]


@pytest.mark.parametrize(("data", "options", "message"), BAD_FILES)
def test_bad_input_exits_2_naming_the_path(
    tmp_path: Path, data: Any, options: list[str], message: str
) -> None:
    result = invoke([*options, write(tmp_path, data)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "venue": "binance-usdm",\n  "wallet_balance": 1,,\n}')
    result = invoke([str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "invalid JSON at line 3 column" in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = invoke([str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "nope.json: cannot read" in result.stderr


# ---- pooled accounts ----

POOLED_EXAMPLE = EXAMPLE.parent / "bybit_unified_usdc_btc.json"
POOLED_VECTORS = [
    "binance_multi_assets_faq",
    "bybit_unified_tiered_btc",
    "bybit_unified_usdc_behind_usdt_long",
]


@pytest.mark.parametrize("name", POOLED_VECTORS)
def test_calc_reproduces_the_pooled_vectors(tmp_path: Path, name: str) -> None:
    vector = load(VECTOR_DIR / f"{name}.json")
    result = invoke(["--format", "json", write(tmp_path, vector["state"])])
    assert result.exit_code == 0, result.stderr
    risk = json.loads(result.stdout)
    wanted = vector["expected"]
    for field, value in wanted["derived"].items():
        assert risk[field] == pytest.approx(value, rel=1e-9), field
    for position, price in zip(risk["positions"], wanted["liquidation_price"], strict=True):
        assert position["liquidation_price"] == pytest.approx(float(price), abs=vector["tolerance"])
    assert [coin["asset"] for coin in risk["collateral_values"]] == [
        coin["asset"] for coin in wanted["collateral_values"]
    ]
    for coin, value in zip(risk["collateral_values"], wanted["collateral_values"], strict=True):
        assert coin["value"] == pytest.approx(value["value"], rel=1e-12), coin["asset"]
    assert risk["model"] == vector["state"]["model"]
    assert risk["liquidation_ratio"] == 1.0


def test_binance_multi_assets_faq_figures_as_binance_prints_them(tmp_path: Path) -> None:
    vector = load(VECTOR_DIR / "binance_multi_assets_faq.json")
    published = vector["expected"]["published"]
    result = invoke(["--format", "json", write(tmp_path, vector["state"])])
    risk = json.loads(result.stdout)
    assert round(risk["equity"], 2) == published["equity"]
    assert round(risk["maintenance_margin"], 3) == published["maintenance_margin"]
    # 0.4797750...: the FAQ cuts it to 0.47977 (and rounds it to 47.98 % in the same line).
    assert (
        math.floor(risk["exchange_margin_ratio"] * 1e5) / 1e5 == published["exchange_margin_ratio"]
    )
    assert f"{risk['exchange_margin_ratio']:.2%}" == "47.98%"


def test_pooled_example_through_the_console_script() -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "calc", str(POOLED_EXAMPLE), "--shock", "BTC=-10%"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    state = apply_shocks(
        state_from_json(json.loads(POOLED_EXAMPLE.read_text())), [Shock("BTC", -0.1)]
    )
    assert json.loads(done.stdout) == json.loads(json.dumps(risk_to_json(assess(state), state)))


def test_a_coin_shock_moves_the_collateral_a_symbol_shock_does_not() -> None:
    by_coin = json.loads(
        invoke(["--format", "json", "--shock", "BTC=-10%", str(POOLED_EXAMPLE)]).stdout
    )
    by_symbol = json.loads(
        invoke(["--format", "json", "--shock", "BTCUSDT=-10%", str(POOLED_EXAMPLE)]).stdout
    )
    values = {c["asset"]: c["value"] for c in by_coin["collateral_values"]}
    held = {c["asset"]: c["value"] for c in by_symbol["collateral_values"]}
    assert values["BTC"] == pytest.approx(held["BTC"] * 0.9)
    assert values["USDT"] == pytest.approx(held["USDT"])  # the same BTCUSDT loss either way
    assert by_coin["equity"] < by_symbol["equity"]


def test_pooled_table_shows_the_model_the_coins_and_the_pool_in_usd() -> None:
    result = invoke(["--format", "table", str(POOLED_EXAMPLE)])
    assert result.exit_code == 0, result.stderr
    state = state_from_json(json.loads(POOLED_EXAMPLE.read_text()))
    risk = assess(state)
    out = result.stdout
    assert "bybit-linear, unified margin" in out
    assert "collateral" in out
    for coin, value in zip(state.collateral, risk.collateral_values, strict=True):
        assert coin.asset in out
        assert f"{value:,.2f}" in out
    assert "98 % (6 tiers)" in out
    assert "cross pool in USD (liquidation at margin ratio 100 %)" in out
    assert f"{risk.equity:,.2f}" in out


def test_pooled_table_labels_venue_figures_and_the_liquidation_ratio(tmp_path: Path) -> None:
    data = json.loads(POOLED_EXAMPLE.read_text())
    data.update(
        model="portfolio",
        liquidation_ratio="1.05",
        venue_terms=[{"name": "margin loans", "maintenance_margin": "321.5"}],
    )
    result = invoke(["--format", "table", write(tmp_path, data)])
    assert result.exit_code == 0, result.stderr
    assert "portfolio margin" in result.stdout
    assert "taken from the venue, not computed" in result.stdout
    assert "margin loans" in result.stdout
    assert "321.50" in result.stdout
    assert "liquidation at margin ratio 105 %" in result.stdout


def test_add_margin_to_a_named_coin_of_a_pool() -> None:
    result = invoke(["--format", "json", "--add-margin", "USDC=5000", str(POOLED_EXAMPLE)])
    assert result.exit_code == 0, result.stderr
    state = add_margin(
        state_from_json(json.loads(POOLED_EXAMPLE.read_text())), 5000.0, asset="USDC"
    )
    assert json.loads(result.stdout) == json.loads(json.dumps(risk_to_json(assess(state), state)))


def _pooled() -> dict[str, Any]:
    data = json.loads(POOLED_EXAMPLE.read_text())
    assert isinstance(data, dict)
    return data


def _pooled_with(path: list[Any], value: Any) -> dict[str, Any]:
    data = _pooled()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


POOLED_BAD = [
    pytest.param(
        _pooled(),
        ["--add-margin", "5000"],
        "--add-margin: a pooled account holds several coins: name one, e.g. USDC=5000 "
        "(has: USDC, BTC, USDT)",
        id="add-margin-without-coin",
    ),
    pytest.param(
        _pooled(),
        ["--shock", "SOL=-10%"],
        "--shock: no position in 'SOL' and no such underlying or collateral coin "
        "(positions: BTCUSDT, ETHUSDC; coins: BTC, ETH, USDC, USDT)",
        id="shock-unknown-coin",
    ),
    pytest.param(
        _pooled_with(["positions", 0, "settle_asset"], "FDUSD"),
        [],
        'positions[0].settle_asset: "FDUSD" is not in collateral (has: USDC, BTC, USDT)',
        id="settle-coin-not-held",
    ),
    pytest.param(
        _pooled_with(["positions", 0, "settle_asset"], "BTC"),
        [],
        "positions[0].settle_asset: BTC moves in price",
        id="settle-coin-not-stable",
    ),
    pytest.param(
        [_pooled(), _pooled_with(["collateral", 1, "ratios", 1, "ratio"], "1.5")],
        [],
        "[1].collateral[1].ratios[1].ratio: must be a collateral value ratio in [0, 1]",
        id="array-path-into-collateral",
    ),
]


@pytest.mark.parametrize(("data", "options", "message"), POOLED_BAD)
def test_bad_pooled_input_exits_2_naming_the_path(
    tmp_path: Path, data: Any, options: list[str], message: str
) -> None:
    result = invoke([*options, write(tmp_path, data)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr


def _readme_calc_section() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    return text.split("<!-- section: calc -->", 1)[1].split("<!-- end section: calc -->", 1)[0]


def test_the_readme_state_examples_compute(tmp_path: Path) -> None:
    blocks = _readme_calc_section().split("```json\n")[1:]
    assert len(blocks) == 3  # single-asset, pooled, and with protective orders
    for block in blocks:
        data = json.loads(block.split("```", 1)[0])
        result = invoke(["--format", "json", write(tmp_path, data)])
        assert result.exit_code == 0, result.stderr


def test_the_readme_figures_of_the_pooled_example() -> None:
    section = " ".join(_readme_calc_section().split())
    state = state_from_json(json.loads(POOLED_EXAMPLE.read_text()))
    price = assess(state).positions[0].liquidation_price
    assert price is not None
    by_coin = assess(apply_shocks(state, [Shock("BTC", -0.1)])).equity
    by_symbol = assess(apply_shocks(state, [Shock("BTCUSDT", -0.1)])).equity
    assert f"liquidation price ({price:,.0f})" in section
    assert f"leaves equity {by_coin:,.0f} USD" in section
    assert f"(collateral held) leaves {by_symbol:,.0f}" in section
