"""A live terminal view of the accounts the daemon watches (used by `portfolio-monitor demo`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rich.console import Group
from rich.text import Text

from monitor.cli.output import fit_table, terminal_width
from monitor.domain.model import Snapshot
from monitor.domain.notification import NotificationKind, Severity
from monitor.domain.stops import PositionStop, StopStatus, position_stops
from monitor.domain.units import format_amount, format_percent, format_price
from monitor.service import CycleReport

log = logging.getLogger("monitor.demo")

_STYLE = {
    Severity.INFO: "cyan",
    Severity.WARNING: "yellow",
    Severity.CRITICAL: "bold red",
    Severity.EMERGENCY: "bold white on red",
}


def _pct(value: float | None, *, signed: bool = False) -> str:
    return "-" if value is None else format_percent(value, signed=signed)


def _stop(stop: PositionStop) -> Text:
    """The stop price and its status; red when it cannot fire, yellow when there is none."""
    status = stop.status
    price = "" if stop.stop_price is None else f"{_price(stop.stop_price)} "
    style = {
        StopStatus.BEYOND_LIQUIDATION: "bold red",
        StopStatus.NONE: "yellow",
        StopStatus.PARTIAL: "yellow",
    }.get(status, "")
    return Text(f"{price}{status.value.replace('_', ' ')}", style=style)


def _price(value: float | None) -> str:
    return "-" if value is None else format_price(value)


@dataclass
class AccountView:
    """What the view remembers of one account between cycles."""

    snapshot: Snapshot | None = None
    error: str | None = None
    firing: dict[str, Severity] = field(default_factory=dict)


class LiveView:
    """Collects cycle reports; `render()` builds the table, `log_lines` mode logs instead."""

    def __init__(self, *, log_lines: bool) -> None:
        self.accounts: dict[str, AccountView] = {}
        self.log_lines = log_lines
        self.history: list[tuple[str, str, str, str]] = []

    def cycle_finished(self, report: CycleReport) -> None:
        """Update the account's row; remember fired and resolved alerts."""
        view = self.accounts.setdefault(report.account, AccountView())
        if report.snapshot is not None:
            view.snapshot = report.snapshot
        view.error = report.error
        for note in report.notifications:
            if note.kind in (NotificationKind.FIRING, NotificationKind.REPEAT):
                view.firing[note.rule] = note.severity
            elif note.kind is NotificationKind.RESOLVED:
                view.firing.pop(note.rule, None)
            else:
                continue
            self.history.append((note.account, note.kind.value, note.severity.value, note.title))
            if self.log_lines:
                log.info(
                    "ALERT %s %s account=%s: %s",
                    note.kind.value,
                    note.severity.value,
                    note.account,
                    note.title,
                )
        if self.log_lines and report.snapshot is not None:
            risk = report.snapshot.risk
            log.info(
                "account=%s equity=%.2f margin_ratio=%s exchange_margin_ratio=%s account_move=%s firing=%s",
                report.account,
                risk.equity,
                _pct(risk.margin_ratio),
                _pct(risk.exchange_margin_ratio),
                _pct(risk.account_liquidation_move, signed=True),
                ",".join(f"{rule}:{sev.value}" for rule, sev in view.firing.items()) or "none",
            )

    def render(self, caption: str = "", width: int | None = None) -> Group:
        """The accounts table, a positions table and the latest alerts, under `caption`, fitted
        to `width` columns (default: the terminal's)."""
        width = width or terminal_width()
        account_rows: list[list[str | Text]] = []
        position_rows: dict[str, list[list[str | Text]]] = {}
        for name, view in sorted(self.accounts.items()):
            alerts = Text()
            for rule, severity in view.firing.items():
                alerts.append(f"{rule} ({severity.value}) ", style=_STYLE[severity])
            if view.error:
                alerts.append(f"fetch failed: {view.error[:40]}", style="red")
            snap = view.snapshot
            if snap is None:
                account_rows.append([name, "-", "-", "-", "-", "-", alerts])
                continue
            risk = snap.risk
            account_rows.append(
                [
                    name,
                    snap.state.venue.value,
                    f"{format_amount(risk.equity)} {snap.state.asset}",
                    _pct(risk.margin_ratio),
                    _pct(risk.exchange_margin_ratio),
                    _pct(risk.account_liquidation_move, signed=True),
                    alerts,
                ]
            )
            stops = position_stops(risk)
            for position, computed, stop in zip(
                snap.state.positions, risk.positions, stops, strict=False
            ):
                position_rows.setdefault(name, []).append(
                    [
                        position.symbol,
                        position.side.value,
                        position.margin_mode.value,
                        _price(position.mark_price),
                        _price(computed.liquidation_price),
                        _price(position.exchange_liquidation_price),
                        _pct(computed.distance_to_liquidation),
                        _stop(stop),
                    ]
                )
        accounts = fit_table(
            account_rows,
            [
                "account",
                "venue",
                "equity",
                "margin ratio",
                "exchange ratio",
                "account move",
                "alerts",
            ],
            width=width,
            title="Accounts",
            optional=("venue", "exchange ratio"),
            text_columns=("venue", "alerts"),
        )
        # One positions table per account: no account column to fit beside the figures.
        positions = [
            fit_table(
                rows,
                ["symbol", "side", "mode", "mark", "our liq.", "exchange liq.", "distance", "stop"],
                width=width,
                title=f"Positions: {name}",
                optional=("mode", "exchange liq."),
                text_columns=("side", "mode", "stop"),
            )
            for name, rows in position_rows.items()
        ]
        recent = fit_table(
            [
                [account, kind, Text(level, style=_STYLE[Severity(level)]), title]
                for account, kind, level, title in reversed(self.history[-6:])
            ],
            ["account", "kind", "severity", "message"],
            width=width,
            title="Alerts (latest first)",
            text_columns=("kind", "severity", "message"),
        )
        return Group(Text(caption, style="bold"), accounts, *positions, recent)
