"""The "in sigmas" table `calc` and `show` print under an account's figures: how many typical
hourly and daily moves separate the account and each position from liquidation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.cli.output import print_table
from monitor.domain.units import format_figure, format_percent
from monitor.domain.volatility import DAILY_RETURNS, HOURLY_RETURNS, SIGMA

if TYPE_CHECKING:
    from monitor.domain.model import AccountRisk, AccountState

HEADERS = (
    "",
    "to liquidation",
    f"{SIGMA} 1 h",
    f"{SIGMA} 1 d",
    f"in {SIGMA} 1 h",
    f"in {SIGMA} 1 d",
)
TITLE = (
    f"in sigmas of recent moves ({SIGMA} 1 h: stdev of the last {HOURLY_RETURNS} hourly log "
    f"returns, {SIGMA} 1 d: of the last {DAILY_RETURNS} daily; not annualised)"
)


def print_sigma_table(state: AccountState, risk: AccountRisk, label: str = "") -> None:
    """The table, or nothing when the state carries no volatility (not read, or calc input
    without it)."""
    volatility = risk.volatility
    if volatility is None:
        return
    move = risk.account_liquidation_move
    known = {entry.symbol: entry for entry in state.volatility}
    rows = [
        [
            "account (all prices)",
            "none" if move is None else format_percent(move, signed=True),
            _percent(volatility.hourly_sigma),
            _percent(volatility.daily_sigma),
            _sigmas(volatility.move_hourly, move is not None),
            _sigmas(volatility.move_daily, move is not None),
        ]
    ]
    for position, result, sigmas in zip(
        state.positions, risk.positions, volatility.positions, strict=True
    ):
        entry = known.get(position.symbol)
        distance = result.distance_to_liquidation
        rows.append(
            [
                f"{position.symbol} {position.side.value}",
                "none" if distance is None else format_percent(distance),
                _percent(entry.hourly if entry else None),
                _percent(entry.daily if entry else None),
                _sigmas(sigmas.hourly, distance is not None),
                _sigmas(sigmas.daily, distance is not None),
            ]
        )
    print_table(rows, HEADERS, title=f"{label}{TITLE}")


def _percent(value: float | None) -> str:
    return "unknown" if value is None else format_percent(value)


def _sigmas(value: float | None, liquidates: bool) -> str:
    """Sigmas of a distance; "none" when nothing liquidates, "unknown" when the sigma is."""
    if not liquidates:
        return "none"
    return "unknown" if value is None else f"{format_figure(value)} {SIGMA}"
