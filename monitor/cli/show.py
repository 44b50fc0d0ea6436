"""`portfolio-monitor show`: fetch accounts once, compute their risk, print both side by side with
the exchange's own figures. Writes nothing."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from monitor.cli.app import EXIT_FAILURE, app
from monitor.cli.options import (
    TABLE_OR_JSON,
    AccountOption,
    ConfigOption,
    TableOrJsonOption,
    choose_format,
    load_or_exit,
    usage_error,
)
from monitor.cli.output import Format, err, print_json, print_table
from monitor.cli.sigmas import print_sigma_table
from monitor.domain.errors import MonitorError
from monitor.domain.units import format_percent, format_price, format_quantity

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.domain.model import AccountRisk, AccountState

    Outcome = tuple[AccountState, AccountRisk] | MonitorError


@app.command()
def show(
    config: ConfigOption = None,
    account: AccountOption = None,
    output: TableOrJsonOption = None,
) -> None:
    """Fetch every (or one) account once and print its state, our risk figures and the exchange's."""
    import asyncio

    fmt = choose_format(output, TABLE_OR_JSON)
    settings = load_or_exit(config)
    names = list(settings.accounts)
    if account is not None:
        if account not in settings.accounts:
            configured = ", ".join(names) or "none"
            raise usage_error(f"unknown account {account!r} (configured: {configured})")
        names = [account]
    if not names:
        raise usage_error("no accounts configured")
    results = asyncio.run(_fetch(settings, names))
    documents = [_document(name, result) for name, result in results]
    if fmt is Format.JSON:
        print_json(documents)
    else:
        for name, result in results:
            _print_tables(name, result)
    if any(isinstance(result, MonitorError) for _, result in results):
        raise typer.Exit(EXIT_FAILURE)


async def _fetch(settings: Settings, names: list[str]) -> list[tuple[str, Outcome]]:
    import asyncio

    # ccxt takes seconds to import; only commands that talk to an exchange pay for it.
    from monitor.domain.margin import assess
    from monitor.exchanges import ExchangeHub

    async with ExchangeHub(volatility=True) as hub:
        clients = [hub.client_for(name, settings.accounts[name]) for name in names]
        fetched = await asyncio.gather(
            *(client.fetch_account() for client in clients), return_exceptions=True
        )
    results: list[tuple[str, Outcome]] = []
    for name, state in zip(names, fetched, strict=True):
        if isinstance(state, MonitorError):
            results.append((name, state))
        elif isinstance(state, BaseException):
            raise state
        else:
            try:
                results.append((name, (state, assess(state))))
            except MonitorError as exc:
                # Exchange data the engine cannot use (e.g. a malformed tier table) is that
                # account's failure, reported like a fetch error, not a traceback.
                results.append((name, exc))
    return results


def _document(name: str, result: Outcome) -> dict[str, Any]:
    from monitor.domain.codec import risk_to_json, state_to_json

    if isinstance(result, MonitorError):
        return {"account": name, "error": str(result)}
    state, risk = result
    return {
        "account": name,
        "model": state.model.value,
        "assumptions": list(state.assumptions),
        "state": state_to_json(state),
        "risk": risk_to_json(risk, state, stops=True),
        "liquidation_prices": [
            {
                "symbol": position.symbol,
                "side": position.side.value,
                "ours": computed.liquidation_price,
                "exchange": position.exchange_liquidation_price,
                "difference": _difference(
                    computed.liquidation_price, position.exchange_liquidation_price
                ),
            }
            for position, computed in zip(state.positions, risk.positions, strict=True)
        ],
    }


def _difference(ours: float | None, theirs: float | None) -> float | None:
    """Relative difference of our liquidation price from the exchange's."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return (ours - theirs) / theirs


def _num(value: float | None) -> str:
    """A price or amount to 8 significant digits: enough to compare with the venue's figure."""
    return "-" if value is None else format_price(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else format_percent(value)


def _pool_rows(state: AccountState) -> list[list[str]]:
    """What a pooled account adds: its liquidation ratio and the venue figures it includes."""
    rows = []
    if state.liquidation_ratio != 1.0:
        rows.append(["liquidation at margin ratio", _pct(state.liquidation_ratio), "-"])
    for term in state.venue_terms:
        if term.equity:
            rows.append([f"{term.name}: equity", "(venue figure)", _num(term.equity)])
        if term.maintenance_margin:
            rows.append(
                [
                    f"{term.name}: maintenance margin",
                    "(venue figure)",
                    _num(term.maintenance_margin),
                ]
            )
    return rows


def _print_tables(name: str, result: Outcome) -> None:
    from monitor.domain.stops import position_stops

    if isinstance(result, MonitorError):
        err(f"{name}: {result}")
        return
    state, risk = result
    reported = state.reported
    print_table(
        [
            ["wallet balance", _num(state.wallet_balance), "-"],
            ["equity", _num(risk.equity), _num(reported.equity)],
            [
                "maintenance margin",
                _num(risk.maintenance_margin),
                _num(reported.maintenance_margin),
            ],
            ["margin ratio (equity/MM)", _pct(risk.margin_ratio), "-"],
            [
                "exchange margin ratio (MM/equity)",
                _pct(risk.exchange_margin_ratio),
                _pct(reported.margin_ratio),
            ],
            ["account liquidation move", _pct(risk.account_liquidation_move), "-"],
            *_pool_rows(state),
        ],
        ["", "ours", "exchange"],
        title=f"{name} ({state.venue.value}, {state.model.value} margin, {state.asset})",
    )
    if state.collateral:
        print_table(
            [
                [
                    coin.asset,
                    format_quantity(coin.quantity),
                    _num(coin.price),
                    _pct(coin.ratios[0].ratio) + (" (tiered)" if len(coin.ratios) > 1 else ""),
                    _num(value),
                ]
                for coin, value in zip(state.collateral, risk.collateral_values, strict=True)
            ],
            ["collateral", "quantity", "USD price", "value ratio", "USD value (PnL incl.)"],
        )
    for assumption in state.assumptions:
        sys.stdout.write(f"assumed: {assumption}\n")
    if not state.positions:
        sys.stdout.write("no open positions\n")
        return
    rows = []
    for position, computed in zip(state.positions, risk.positions, strict=True):
        rows.append(
            [
                position.symbol,
                position.side.value + (" (hedge)" if position.hedge else ""),
                position.margin_mode.value,
                format_quantity(position.quantity),
                _num(position.mark_price),
                _num(computed.liquidation_price),
                _num(position.exchange_liquidation_price),
                _pct(_difference(computed.liquidation_price, position.exchange_liquidation_price)),
                _pct(computed.distance_to_liquidation),
            ]
        )
    print_table(
        rows,
        [
            "symbol",
            "side",
            "margin",
            "quantity",
            "mark",
            "liq. ours",
            "liq. exchange",
            "difference",
            "distance",
        ],
    )
    print_sigma_table(state, risk)
    print_table(
        [
            [
                position.symbol,
                position.side.value + (" (hedge)" if position.hedge else ""),
                _num(stop.stop_price),
                _num(computed.liquidation_price),
                _pct(stop.quantity_covered),
                _num(stop.loss_at_stop),
                _pct(stop.loss_at_stop_of_equity),
                stop.status.value.replace("_", " "),
            ]
            for position, computed, stop in zip(
                state.positions, risk.positions, position_stops(risk), strict=True
            )
        ],
        [
            "symbol",
            "side",
            "stop",
            "liq. ours",
            "covered",
            "PnL at stop",
            "of equity",
            "stop status",
        ],
        title="Protective stops",
    )
