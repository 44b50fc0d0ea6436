"""Every table at an 80-column terminal (the default): no line wider than the terminal, no number
cut in two, no rule name split mid-word; columns left out are named under the table."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

import monitor
from monitor.cli.app import app
from monitor.cli.live_view import LiveView
from monitor.domain.codec import state_from_json
from monitor.domain.margin import assess
from monitor.domain.model import Snapshot
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.domain.units import format_amount, format_percent, format_price
from monitor.service import CycleReport
from tests.cli.conftest import ACCOUNT

EXAMPLE = Path(monitor.__file__).parent / "examples" / "binance_cross_two_longs.json"
runner = CliRunner()


def assert_fits(screen: str, numbers: list[str]) -> None:
    lines = screen.splitlines()
    assert lines, "nothing rendered"
    widest = max(lines, key=len)
    assert len(widest) <= 80, widest
    for number in numbers:
        # Each figure on one line, whole: `59,999.` over `2` would not match.
        assert re.search(rf"(?<![\d,.]){re.escape(number)}(?![\d,.])", screen), number


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "80"})
    assert result.exit_code in (0, 1), result.stderr
    return result.stdout


def test_status_fits_80_columns(db: str) -> None:
    screen = invoke("status", "--database", db, "--format", "table")
    assert_fits(screen, ["9,000.00", "300 %"])
    # Rule names wrap between words only.
    assert "liquidation_distance" in screen
    assert "account_move" in screen


def test_history_fits_80_columns(db: str) -> None:
    screen = invoke("history", "--database", db, "--format", "table", "--since", "1h")
    assert_fits(screen, ["9,000.00", "300 %"])
    screen = invoke(
        "history", "--database", db, "--format", "table", "--symbol", "BTCUSDT", "--since", "1h"
    )
    assert_fits(screen, ["59,999.2", "41,000"])


def test_alerts_fit_80_columns(db: str) -> None:
    screen = invoke("alerts", "--database", db, "--format", "table")
    assert_fits(screen, ["142.0"])
    assert "liquidation_distance" in screen


def test_calc_table_fits_80_columns() -> None:
    screen = invoke("calc", str(EXAMPLE), "--format", "table")
    result = json.loads(runner.invoke(app, ["calc", str(EXAMPLE), "--format", "json"]).stdout)
    liquidation = result["positions"][0]["liquidation_price"]
    assert_fits(screen, [f"{liquidation:,.2f}"])


def test_demo_live_view_fits_80_columns() -> None:
    state = state_from_json(json.loads(EXAMPLE.read_text()))
    risk = assess(state)
    now = datetime.now(UTC)
    view = LiveView(log_lines=False)
    for name in (ACCOUNT, "demo-bybit-unified-usdc"):
        note = Notification(
            id="n1",
            account=name,
            rule="liquidation_distance",
            kind=NotificationKind.FIRING,
            severity=Severity.CRITICAL,
            title="Liquidation of BTCUSDT long within 4.1 %",
            text="",
            created_at=now,
        )
        view.cycle_finished(
            CycleReport(
                account=name,
                started_at=now,
                seconds=0.1,
                snapshot=Snapshot(name, now, state, risk),
                error_kind=None,
                error=None,
                notifications=(note,),
            )
        )
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(view.render("portfolio-monitor demo: 12/75 s", width=80))
    screen = console.export_text()
    marks = [format_price(p.mark_price) for p in state.positions]
    assert risk.margin_ratio is not None
    ratio = format_percent(risk.margin_ratio)  # with its unit, on one line
    assert_fits(screen, [*marks, format_amount(risk.equity), ratio])
    assert "Positions: demo-bybit-unified-usdc" in screen
    assert "liquidation_distance" in screen
    assert "Alerts (latest first)" in screen
