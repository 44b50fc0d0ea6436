"""`portfolio-monitor history`: account or position history from the database, optionally
downsampled. Reading works while the daemon runs (SQLite WAL) and without it."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli.app import app
from monitor.cli.options import (
    AccountOption,
    ConfigOption,
    DatabaseOption,
    FormatOption,
    SinceOption,
    UntilOption,
    accounts_to_read,
    choose_format,
    resolve_database_url,
    run_on_store,
    stamp,
    time_window,
    usage_error,
)
from monitor.cli.output import (
    Format,
    err,
    number_cell,
    percent_cell,
    price_cell,
    print_csv,
    print_json,
    print_table,
    terminal_width,
    to_jsonable,
)
from monitor.domain.errors import InvalidInput
from monitor.domain.units import format_quantity, parse_duration

# The storage layer (SQLAlchemy, Alembic) and the configuration (pydantic) are imported inside
# the commands: `--help` and the other commands must not pay for them (see bench/startup.py).
if TYPE_CHECKING:
    from monitor.storage import queries
    from monitor.storage.repository import SqlStore

_SPARKS = "▁▂▃▄▅▆▇█"


def _every(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text, path="--every").total_seconds()
    except InvalidInput as exc:
        raise usage_error(str(exc)) from None
    if seconds < 60 or seconds % 60:
        raise usage_error(f"--every: {text!r} must be a whole number of minutes (1m, 15m, 1h, 1d)")
    return int(seconds)


def sparkline(values: Sequence[float | None]) -> str:
    """A one-line chart of `values` (gaps as spaces), lowest as ▁ and highest as █."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    chars = []
    for value in values:
        if value is None:
            chars.append(" ")
        else:
            level = 0 if span == 0 else round((value - low) / span * (len(_SPARKS) - 1))
            chars.append(_SPARKS[level])
    return "".join(chars)


@app.command()
def history(
    account: AccountOption = None,
    symbol: Annotated[
        str | None, typer.Option("--symbol", help="Position history of this symbol.")
    ] = None,
    since: SinceOption = "24h",
    until: UntilOption = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--every", help="One row per bucket (1m, 1h, ...): worst ratio, smallest distance."
        ),
    ] = None,
    output_format: FormatOption = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Account or position history from the database, optionally downsampled."""
    from monitor.storage import queries

    now = datetime.now(UTC)

    chosen = choose_format(output_format)
    start, end = time_window(since, until, now)
    bucket = _every(every)
    url, _ = resolve_database_url(config, database)

    async def read(store: SqlStore) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        held_by = 0
        for name in await accounts_to_read(store, account):
            if symbol is None:
                points: Sequence[Any] = await queries.account_history(
                    store, name, start, end, bucket
                )
            else:
                try:
                    points = await queries.position_history(store, name, symbol, start, end, bucket)
                except InvalidInput:
                    if account is not None:
                        raise
                    continue
                held_by += 1
            rows += [_row(name, point) for point in points]
        if symbol is not None and account is None and not held_by:
            raise InvalidInput("--symbol", f"no position in {symbol!r} was ever stored")
        return rows

    rows = run_on_store(url, read)
    what = f"{symbol} positions" if symbol else "snapshots"
    if not rows:
        err(f"no {what} between {stamp(start)} and {stamp(end)} UTC")
        if chosen is Format.JSON:
            print_json([])
        return

    # A row is the account and the stored point's fields, in the order the query defines them.
    columns = (
        ("account", *(f.name for f in fields(queries.PositionPoint)))
        if symbol
        else queries.ACCOUNT_COLUMNS
    )
    if chosen is Format.JSON:
        _print_json_lines([{c: row.get(c) for c in columns} for row in rows])
    elif chosen is Format.CSV:
        print_csv(rows, columns)
    elif symbol:
        _position_table(rows)
    else:
        _account_table(rows, every)


def _row(account: str, point: queries.AccountPoint | queries.PositionPoint) -> dict[str, Any]:
    # Shallow on purpose: dataclasses.asdict deep-copies every value, which dominates the time
    # of a month of hourly rows.
    return {"account": account, **{f.name: getattr(point, f.name) for f in fields(point)}}


def _print_json_lines(rows: list[dict[str, Any]]) -> None:
    """A JSON array with one row per line: valid JSON, greppable, fast for long histories."""
    lines = (json.dumps(row, allow_nan=False, default=to_jsonable) for row in rows)
    sys.stdout.write("[\n" + ",\n".join(lines) + "\n]\n")


def _account_table(rows: list[dict[str, Any]], every: str | None) -> None:
    if every is None:
        headers = ["time (UTC)", "n", "equity", "margin ratio", "lowest", "exchange ratio"]
        headers += ["move", "nearest liq."]
    else:
        headers = ["bucket (UTC)", "snapshots", "equity", "margin ratio", "lowest"]
        headers += ["exchange ratio", "move", "nearest liq."]
    for name in dict.fromkeys(row["account"] for row in rows):
        mine = [row for row in rows if row["account"] == name]
        cells = [
            [
                stamp(row["at"]),
                str(row["samples"]),
                number_cell(row["equity"]),
                percent_cell(row["margin_ratio"]),
                percent_cell(row["margin_ratio_min"]),
                percent_cell(row["exchange_margin_ratio"]),
                percent_cell(row["account_liquidation_move"]),
                percent_cell(row["min_distance"]),
            ]
            for row in mine
        ]
        print_table(cells, headers, title=name, optional=("exchange ratio", "move"))
        if every is not None:
            # Say exactly what a bucket's figures are: one row can stand for many snapshots.
            legend = (
                f"One row per {every} bucket starting at its time; snapshots = how many stored "
                "snapshots it holds. equity, margin ratio, exchange ratio, move: its last "
                "snapshot. lowest: the lowest margin ratio of its snapshots. nearest liq.: the "
                "smallest distance to liquidation of its snapshots."
            )
            sys.stdout.write(textwrap.fill(legend, width=terminal_width()) + "\n")
        lows = [row["margin_ratio_min"] for row in mine]
        highs = [row["margin_ratio_max"] for row in mine]
        low = [v for v in lows if v is not None]
        high = [v for v in highs if v is not None]
        if low:
            count = sum(row["samples"] for row in mine)
            sys.stdout.write(
                f"margin ratio over {count} snapshot(s): lowest {percent_cell(min(low))}, "
                f"highest {percent_cell(max(high or low))}\n"
                f"lowest per row {sparkline(lows[-(terminal_width() - 16) :])}\n"
            )


def _position_table(rows: list[dict[str, Any]]) -> None:
    headers = [
        "time (UTC)",
        "account",
        "side",
        "size",
        "mark",
        "liq.",
        "exchange liq.",
        "distance",
        "nearest",
    ]
    cells = [
        [
            stamp(row["at"]),
            row["account"],
            f"{row['side']} {row['margin_mode']}",
            format_quantity(row["quantity"]),
            price_cell(row["mark_price"]),
            price_cell(row["liquidation_price"]),
            price_cell(row["exchange_liquidation_price"]),
            percent_cell(row["distance_to_liquidation"]),
            percent_cell(row["min_distance"]),
        ]
        for row in rows
    ]
    print_table(
        cells,
        headers,
        title=str(rows[0]["symbol"]),
        optional=("exchange liq.", "nearest", "account"),
        text_columns=("account", "side"),
    )
