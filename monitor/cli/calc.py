"""`portfolio-monitor calc`: run the margin engine on account states from a file or stdin."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from monitor.cli.app import app
from monitor.cli.options import usage_error
from monitor.cli.output import Format, default_format, print_json, print_table
from monitor.domain.codec import risk_to_json, state_from_json
from monitor.domain.errors import InvalidInput
from monitor.domain.margin import assess
from monitor.domain.model import AccountRisk, AccountState, MarginMode
from monitor.domain.scenarios import Shock, add_margin, apply_shocks, parse_amount, parse_shock

# Narrow enough for an 80-column terminal: prices in full, margin and PnL compact (1.23M).
POSITION_HEADERS = ("symbol", "side", "mark", "liq. price", "distance", "MM", "PnL")
POOL_HEADERS = ("equity", "maint. margin", "margin ratio", "exchange ratio", "account move")


@app.command()
def calc(
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE|-", help="Account state JSON (one state or an array); - = stdin."
        ),
    ],
    output_format: Annotated[
        Format | None,
        typer.Option(
            "--format", help="table (default at a terminal) or json (default when piped)."
        ),
    ] = None,
    shock: Annotated[
        list[str] | None,
        typer.Option(
            "--shock",
            metavar="SYMBOL=MOVE",
            help="Move a mark before computing: BTCUSDT=-10%, or all=-5% for every mark. Repeatable.",
        ),
    ] = None,
    margin: Annotated[
        str | None,
        typer.Option(
            "--add-margin",
            metavar="AMOUNT",
            help="Add margin to the cross wallet before computing (negative removes it).",
        ),
    ] = None,
) -> None:
    """Compute margin ratios, liquidation prices and the account-wide liquidation move."""
    chosen = output_format or default_format()
    if chosen is Format.CSV:
        raise usage_error("--format: calc prints table or json")
    try:
        shocks = [parse_shock(text) for text in shock or []]
        amount = parse_amount(margin) if margin is not None else None
    except InvalidInput as error:
        raise usage_error(str(error)) from None
    document = _read(source)
    many = isinstance(document, list)
    items = document if many else [document]
    results: list[tuple[AccountState, AccountRisk]] = []
    for index, item in enumerate(items):
        prefix = f"[{index}]" if many else ""
        try:
            state = _scenario(state_from_json(item), shocks, amount)
            results.append((state, assess(state)))
        except InvalidInput as error:
            if error.path.startswith("--"):
                raise usage_error(
                    f"{error.path}: {prefix}{' ' if prefix else ''}{error.problem}"
                ) from None
            path = f"{prefix}.{error.path}" if prefix and error.path else prefix or error.path
            raise usage_error(f"{path}: {error.problem}" if path else error.problem) from None
    if chosen is Format.JSON:
        payload = [risk_to_json(risk) for _, risk in results]
        print_json(payload if many else payload[0])
        return
    for index, (state, risk) in enumerate(results):
        _print_tables(state, risk, f"[{index}] " if many else "")


def _read(source: str) -> Any:
    """The parsed JSON document; bad input exits 2 with the reason on stderr."""
    name = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise usage_error(f"{name}: cannot read: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise usage_error(
            f"{name}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None


def _scenario(state: AccountState, shocks: list[Shock], amount: float | None) -> AccountState:
    if shocks:
        state = apply_shocks(state, shocks)
    if amount is not None:
        state = add_margin(state, amount)
    return state


def _print_tables(state: AccountState, risk: AccountRisk, label: str) -> None:
    rows = [
        (
            result.symbol,
            result.side.value + (" iso" if result.margin_mode is MarginMode.ISOLATED else ""),
            _price(position.mark_price),
            _price(result.liquidation_price),
            _percent(result.distance_to_liquidation),
            _compact(result.maintenance_margin),
            _compact(result.unrealized_pnl),
        )
        for position, result in zip(state.positions, risk.positions, strict=True)
    ]
    title = f"{label}{state.venue.value}, wallet {_amount(state.wallet_balance)} {state.asset}"
    print_table(rows, POSITION_HEADERS, title=title)
    pool = (
        _amount(risk.equity),
        _amount(risk.maintenance_margin),
        _percent(risk.margin_ratio),
        _percent(risk.exchange_margin_ratio),
        _percent(risk.account_liquidation_move, signed=True),
    )
    print_table(
        [pool], POOL_HEADERS, title=f"{label}cross pool (liquidation at margin ratio 100 %)"
    )


def _price(value: float | None) -> str:
    if value is None:
        return "none"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    return f"{value:.6g}"


def _amount(value: float) -> str:
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.6g}"


def _compact(value: float) -> str:
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.4g}{suffix}"
    return f"{value:.4g}"


def _percent(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "none"
    return f"{value:+.2%}" if signed else f"{value:.2%}"
