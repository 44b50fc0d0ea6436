"""`portfolio-monitor calc`: run the margin engine on account states from a file or stdin."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli.app import app
from monitor.cli.options import usage_error
from monitor.cli.output import Format, default_format, print_json, print_table
from monitor.cli.sigmas import print_sigma_table
from monitor.domain.errors import InvalidInput
from monitor.domain.units import (
    format_amount,
    format_compact,
    format_percent,
    format_price,
    format_quantity,
)

# The engine is imported when a calculation runs: `--help` and the other commands need not load it.
if TYPE_CHECKING:
    from monitor.domain.model import AccountRisk, AccountState, Collateral
    from monitor.domain.scenarios import MarginChange, Shock

# Narrow enough for an 80-column terminal: prices in full, margin and PnL compact (1.23M).
POSITION_HEADERS = ("symbol", "side", "mark", "liq. price", "distance", "MM", "PnL")
POOL_HEADERS = ("equity", "maint. margin", "margin ratio", "exchange ratio", "account move")
COLLATERAL_HEADERS = ("collateral", "quantity", "USD price", "value ratio", "USD value")
VENUE_TERM_HEADERS = ("venue figure", "equity", "maint. margin")


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
            metavar="NAME=MOVE",
            help="Move prices before computing: BTCUSDT=-10% (that mark), BTC=-10% (every mark on "
            "BTC and BTC collateral), all=-5% (every mark and non-stable coin). Repeatable.",
        ),
    ] = None,
    margin: Annotated[
        str | None,
        typer.Option(
            "--add-margin",
            metavar="[COIN=]AMOUNT",
            help="Add margin before computing (negative removes it): AMOUNT to a single-asset "
            "wallet, COIN=AMOUNT (coin units) to one coin of a pooled account.",
        ),
    ] = None,
) -> None:
    """Compute margin ratios, liquidation prices and the account-wide liquidation move."""
    from monitor.domain.codec import risk_to_json, state_from_json
    from monitor.domain.margin import assess
    from monitor.domain.scenarios import parse_margin, parse_shock

    chosen = output_format or default_format()
    if chosen is Format.CSV:
        raise usage_error("--format: calc prints table or json")
    try:
        shocks = [parse_shock(text) for text in shock or []]
        change = parse_margin(margin) if margin is not None else None
    except InvalidInput as error:
        raise usage_error(str(error)) from None
    document = _read(source)
    many = isinstance(document, list)
    items = document if many else [document]
    results: list[tuple[AccountState, AccountRisk]] = []
    for index, item in enumerate(items):
        prefix = f"[{index}]" if many else ""
        try:
            state = _scenario(state_from_json(item), shocks, change)
            results.append((state, assess(state)))
        except InvalidInput as error:
            if error.path.startswith("--"):
                raise usage_error(
                    f"{error.path}: {prefix}{' ' if prefix else ''}{error.problem}"
                ) from None
            path = f"{prefix}.{error.path}" if prefix and error.path else prefix or error.path
            raise usage_error(f"{path}: {error.problem}" if path else error.problem) from None
    if chosen is Format.JSON:
        payload = [risk_to_json(risk, state) for state, risk in results]
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


def _scenario(
    state: AccountState, shocks: list[Shock], change: MarginChange | None
) -> AccountState:
    from monitor.domain.scenarios import add_margin, apply_shocks

    if shocks:
        state = apply_shocks(state, shocks)
    if change is not None:
        state = add_margin(state, change.amount, asset=change.asset)
    return state


def _print_tables(state: AccountState, risk: AccountRisk, label: str) -> None:
    from monitor.domain.model import MarginMode

    rows = [
        (
            result.symbol,
            result.side.value + (" iso" if result.margin_mode is MarginMode.ISOLATED else ""),
            _price(position.mark_price),
            _price(result.liquidation_price),
            _percent(result.distance_to_liquidation),
            format_compact(result.maintenance_margin),
            format_compact(result.unrealized_pnl),
        )
        for position, result in zip(state.positions, risk.positions, strict=True)
    ]
    if state.pooled:
        # Positions pay PnL and margin in their settlement coin; the pool adds them up in USD.
        title = (
            f"{label}{state.venue.value}, {state.model.value} margin "
            "(MM and PnL in each position's settlement coin)"
        )
    else:
        title = f"{label}{state.venue.value}, wallet {format_amount(state.wallet_balance)} {state.asset}"
    print_table(rows, POSITION_HEADERS, title=title)
    if state.pooled:
        coins = [
            (
                coin.asset,
                format_quantity(coin.quantity),
                _price(coin.price),
                _ratio(coin),
                format_amount(value),
            )
            for coin, value in zip(state.collateral, risk.collateral_values, strict=True)
        ]
        print_table(
            coins,
            COLLATERAL_HEADERS,
            title=f"{label}collateral (values after ratios, PnL of positions settled in the coin)",
        )
    if state.venue_terms:
        terms = [
            (term.name, format_amount(term.equity), format_amount(term.maintenance_margin))
            for term in state.venue_terms
        ]
        print_table(terms, VENUE_TERM_HEADERS, title=f"{label}taken from the venue, not computed")
    pool = (
        format_amount(risk.equity),
        format_amount(risk.maintenance_margin),
        _percent(risk.margin_ratio),
        _percent(risk.exchange_margin_ratio),
        _percent(risk.account_liquidation_move, signed=True),
    )
    currency = " in USD" if state.pooled else ""
    trigger = _percent(state.liquidation_ratio)
    print_table(
        [pool],
        POOL_HEADERS,
        title=f"{label}cross pool{currency} (liquidation at margin ratio {trigger})",
    )
    print_sigma_table(state, risk, label)


def _ratio(coin: Collateral) -> str:
    """The value ratio; a tiered coin shows the ratio of its first tranche and says it is tiered."""
    first = _percent(coin.ratios[0].ratio)
    tiered = f" ({len(coin.ratios)} tiers)" if len(coin.ratios) > 1 else ""
    liability = f", debt x{coin.liability_rate:g}" if coin.liability_rate != 1.0 else ""
    return first + tiered + liability


def _price(value: float | None) -> str:
    return "none" if value is None else format_price(value)


def _percent(value: float | None, *, signed: bool = False) -> str:
    return "none" if value is None else format_percent(value, signed=signed)
