"""`history` prints the columns it always printed, in the same order (they are derived from the
stored points, so a renamed field must show up here)."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from monitor.cli.app import app

POSITION_COLUMNS = [
    "account",
    "at",
    "samples",
    "symbol",
    "side",
    "margin_mode",
    "quantity",
    "entry_price",
    "mark_price",
    "unrealized_pnl",
    "maintenance_margin",
    "liquidation_price",
    "exchange_liquidation_price",
    "distance_to_liquidation",
    "min_distance",
]


def test_position_history_columns(db: str) -> None:
    args = ["history", "--database", db, "--symbol", "BTCUSDT", "--since", "1h"]
    as_csv = CliRunner().invoke(app, [*args, "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.stderr
    assert next(csv.reader(io.StringIO(as_csv.stdout))) == POSITION_COLUMNS
    as_json = CliRunner().invoke(app, [*args, "--format", "json"])
    assert as_json.exit_code == 0, as_json.stderr
    assert as_json.stdout.splitlines()[1].startswith('{"account": ')
    assert list(json.loads(as_json.stdout)[0]) == POSITION_COLUMNS
