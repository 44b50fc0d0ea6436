"""The demo's live table shows both ratio conventions, both liquidation prices and what fires."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from rich.console import Console

from monitor.cli.live_view import LiveView
from monitor.domain.margin import assess
from monitor.domain.model import AccountState, MarginMode, Position, Side, Snapshot, Tier, Venue
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.domain.units import format_percent, format_price
from monitor.service import CycleReport

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _report(kinds: tuple[tuple[NotificationKind, Severity], ...] = ()) -> CycleReport:
    position = Position(
        "BTCUSDT",
        Side.LONG,
        MarginMode.CROSS,
        0.5,
        60_000.0,
        59_000.0,
        (Tier(0.0, None, 0.005),),
        exchange_liquidation_price=57_123.4,
    )
    state = AccountState(Venue.BINANCE_USDM, 1_000.0, (position,))
    snapshot = Snapshot("main", NOW, state, assess(state))
    notes = tuple(
        Notification(
            f"n{i}",
            "main",
            "margin_ratio",
            kind,
            severity,
            f"main: margin ratio {severity}",
            "",
            NOW,
        )
        for i, (kind, severity) in enumerate(kinds)
    )
    return CycleReport("main", NOW, 0.1, snapshot, None, None, notes)


def _text(view: LiveView) -> str:
    console = Console(record=True, width=220)
    console.print(view.render(width=console.width))
    return console.export_text()


def test_table_shows_ratios_prices_and_firing_alerts() -> None:
    view = LiveView(log_lines=False)
    report = _report(((NotificationKind.FIRING, Severity.WARNING),))
    view.cycle_finished(report)
    text = _text(view)
    risk = report.snapshot.risk if report.snapshot else None
    assert risk is not None
    assert risk.margin_ratio is not None
    assert risk.exchange_margin_ratio is not None
    assert format_percent(risk.margin_ratio) in text
    assert format_percent(risk.exchange_margin_ratio) in text
    assert "57,123.4" in text
    liquidation = risk.positions[0].liquidation_price
    assert liquidation is not None
    assert format_price(liquidation) in text
    assert "margin_ratio (warning)" in text

    view.cycle_finished(_report(((NotificationKind.FIRING, Severity.CRITICAL),)))
    assert "margin_ratio (critical)" in _text(view)
    view.cycle_finished(_report(((NotificationKind.RESOLVED, Severity.CRITICAL),)))
    text = _text(view)
    assert "margin_ratio (" not in text
    assert [kind for _, kind, _, _ in view.history] == ["firing", "firing", "resolved"]


def test_log_lines_mode(caplog: pytest.LogCaptureFixture) -> None:
    view = LiveView(log_lines=True)
    with caplog.at_level(logging.INFO, logger="monitor.demo"):
        view.cycle_finished(_report(((NotificationKind.FIRING, Severity.WARNING),)))
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("ALERT firing warning account=main") for m in messages)
    assert any("margin_ratio=" in m and "firing=margin_ratio:warning" in m for m in messages)
