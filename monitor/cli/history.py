"""Commands reading the snapshot database: `history`, `status`, `plot`; and its upkeep: `backup`,
`migrate`, `prune`. Reading works while the daemon runs (SQLite WAL) and without it."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli.app import EXIT_FAILURE, app
from monitor.cli.options import (
    AccountOption,
    ConfigOption,
    DatabaseOption,
    FormatOption,
    SinceOption,
    UntilOption,
    choose_format,
    database_file,
    existing_database,
    resolve_database_url,
    run_on_store,
    stamp,
    time_window,
    usage_error,
)
from monitor.cli.output import (
    Format,
    err,
    print_csv,
    print_json,
    print_table,
    terminal_width,
    to_jsonable,
)
from monitor.domain.errors import InvalidInput
from monitor.domain.units import format_duration, parse_duration
from monitor.domain.volatility import SIGMA
from monitor.errors import ConfigError, StorageError

# The storage layer (SQLAlchemy, Alembic) and the configuration (pydantic) are imported inside
# the commands: `--help` and the other commands must not pay for them (see bench/startup.py).
if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.storage import queries
    from monitor.storage.leases import LeaseInfo
    from monitor.storage.repository import SqlStore

# A poll is late after this many intervals (the status command's staleness rule).
STALE_INTERVALS = 3
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


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _price(value: float | None) -> str:
    return "-" if value is None else f"{value:,.6g}"


async def _accounts(store: SqlStore, account: str | None) -> list[str]:
    from monitor.storage import queries

    # An unknown --account is reported by the history query itself, naming the stored ones.
    if account is not None:
        return [account]
    return [info.name for info in await queries.accounts(store)]


POSITION_COLUMNS = (
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
)


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
        for name in await _accounts(store, account):
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

    columns = POSITION_COLUMNS if symbol else queries.ACCOUNT_COLUMNS
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
                _number(row["equity"]),
                _percent(row["margin_ratio"]),
                _percent(row["margin_ratio_min"]),
                _percent(row["exchange_margin_ratio"]),
                _percent(row["account_liquidation_move"]),
                _percent(row["min_distance"]),
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
                f"margin ratio over {count} snapshot(s): lowest {_percent(min(low))}, "
                f"highest {_percent(max(high or low))}\n"
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
            f"{row['quantity']:g}",
            _price(row["mark_price"]),
            _price(row["liquidation_price"]),
            _price(row["exchange_liquidation_price"]),
            _percent(row["distance_to_liquidation"]),
            _percent(row["min_distance"]),
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


@app.command()
def status(
    output_format: FormatOption = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch",
            metavar="SECONDS",
            min=0.5,
            help="Show the table again every SECONDS (a live view of the running daemon's "
            "database) until Ctrl-C, which ends it with exit 0.",
        ),
    ] = None,
) -> None:
    """Latest snapshot of every account, alert sinks that do not take alerts, and whether the
    database takes writes; exit 1 when any account's data is older than 3 polls, a sink is
    disabled, every remote sink fails, or the SQLite database cannot be written.

    With --watch, the table is drawn again every SECONDS until Ctrl-C (exit 0).

    With mark streams on, `stream` says how each account's marks arrived as the daemon last
    recorded it ("live", or "polling: <why>"), and a snapshot is stored every reconciliation
    interval, so data counts as stale after 3 of those.

    With a configuration, accounts found only in the database (removed from the configuration)
    are listed as removed and do not count.
    """
    chosen = choose_format(output_format)
    url, settings = resolve_database_url(config, database)
    if watch is not None:
        if output_format is not None and chosen is not Format.TABLE:
            raise usage_error("--watch draws a table; leave out --format (or use --format table)")
        _watch(url, settings, watch)
        return
    if _status_once(url, settings, chosen):
        raise typer.Exit(EXIT_FAILURE)


def _watch(url: str, settings: Settings | None, seconds: float) -> None:
    """Draw the status again every `seconds` until Ctrl-C; a terminal is cleared between draws,
    a pipe or file gets one draw after the other."""
    import time

    from rich.console import Console

    console = Console()
    try:
        while True:
            started = time.monotonic()
            if console.is_terminal:
                console.clear()
            sys.stdout.write(
                f"portfolio-monitor status at {stamp(datetime.now(UTC))} UTC, every "
                f"{seconds:g} s (Ctrl-C ends)\n"
            )
            _status_once(url, settings, Format.TABLE)
            sys.stdout.flush()
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    except KeyboardInterrupt:
        sys.stdout.write("\n")


def _status_once(url: str, settings: Settings | None, chosen: Format) -> bool:
    """Print the status once; True when it needs a person (stale data, sinks, storage)."""
    from monitor.storage import queries
    from monitor.storage.engine import sqlite_path, sqlite_write_trouble
    from monitor.storage.leases import leases

    now = datetime.now(UTC)
    configured = {} if settings is None else dict(settings.accounts)
    streams = _stream_health(settings)

    async def read(store: SqlStore) -> list[dict[str, Any]]:
        infos = {info.name: info for info in await queries.accounts(store)}
        firing = await queries.firing_alerts(store)
        held = {lease.account: lease for lease in await leases(store.engine)}
        rows = []
        for name in sorted(set(infos) | set(configured)):
            info = infos.get(name)
            latest = await queries.latest_snapshot(store, name) if info else None
            if name in configured:
                interval: float | None = configured[name].poll_interval.total_seconds()
            else:
                interval = info.poll_interval if info else None
            if settings is not None and settings.streams.enabled and interval is not None:
                # Live marks store a snapshot only at the reconciliation cadence.
                reconcile = settings.streams.reconcile_interval.total_seconds()
                interval = max(interval, reconcile)
            row = _status_row(name, latest, interval, now, firing)
            row["stream"] = streams.get(name, {}).get("stream")
            row["asset"] = info.asset if info else None
            row["model"] = info.model if info else None
            # An account removed from the configuration keeps its history but is no longer
            # polled; it must not make the health check fail for ever.
            row["configured"] = settings is None or name in configured
            row.update(_lease_fields(held.get(name), now))
            rows.append(row)
        return rows

    rows = run_on_store(url, read)
    sinks = run_on_store(url, lambda store: _troubled_sinks(store, settings))
    if chosen is Format.JSON:
        print_json(rows)
    elif chosen is Format.CSV:
        print_csv([_status_csv_row(row) for row in rows], STATUS_CSV_COLUMNS)
    elif not rows:
        err("no accounts stored yet (has the daemon run?)")
    else:
        _status_table(rows)
    sinks_need_a_person = _report_sinks(sinks, settings, chosen)
    file = sqlite_path(url)
    storage = None if file is None else sqlite_write_trouble(file)
    if storage is not None:
        err(
            f"STORAGE FAILING: {storage}. The daemon still sends alerts (from memory) and keeps "
            "snapshots in memory until writes work again; the figures above may be old."
        )
    return (
        storage is not None
        or not rows
        or any(row["stale"] and row["configured"] for row in rows)
        or sinks_need_a_person
    )


async def _troubled_sinks(store: SqlStore, settings: Settings | None) -> list[dict[str, Any]]:
    """Configured sinks (every stored one without a configuration) that are failing or disabled,
    as the daemon last recorded them, with how many alerts wait for each."""
    try:
        states = await store.sink_states()
        held = await store.held_counts()
    except StorageError:
        return []  # a database from before sink states were stored: nothing known
    names = settings.notify.sink_names() if settings is not None else sorted(states)
    return [
        {
            "sink": name,
            "state": states[name].state,
            "since": states[name].since,
            "next_attempt_at": states[name].next_attempt_at,
            "last_error": states[name].last_error,
            "held": held.get(name, 0),
        }
        for name in names
        if name in states and not states[name].ok
    ]


def _report_sinks(
    troubled: list[dict[str, Any]], settings: Settings | None, chosen: Format
) -> bool:
    """Show the sinks that do not take alerts; True when a person must act: one is disabled
    (a permanent error) or every remote sink fails (alerts reach no one)."""
    from monitor.delivery import LOCAL_SINKS

    if not troubled:
        return False
    names = settings.notify.sink_names() if settings is not None else [t["sink"] for t in troubled]
    remote = {name for name in names if name not in LOCAL_SINKS}
    blind = bool(remote) and remote <= {t["sink"] for t in troubled}
    if chosen is Format.TABLE:
        print_table(
            [
                [
                    t["sink"],
                    t["state"],
                    stamp(t["since"]) if t["since"] else "-",
                    str(t["held"]),
                    stamp(t["next_attempt_at"]) if t["next_attempt_at"] else "-",
                    t["last_error"] or "",
                ]
                for t in troubled
            ],
            ["sink", "state", "since (UTC)", "held", "next try (UTC)", "last error"],
            title="Alert sinks not taking alerts",
        )
    else:
        for t in troubled:
            err(f"sink {t['sink']} {t['state']}, {t['held']} alert(s) held: {t['last_error']}")
    if blind:
        err("ALERTS REACH NO ONE: every remote sink is failing (alerts are held, not lost)")
    disabled = [t["sink"] for t in troubled if t["state"] == "disabled"]
    if disabled:
        err(
            "after fixing a sink: "
            + "; ".join(f"portfolio-monitor alerts --retry {name}" for name in disabled)
        )
    return blind or bool(disabled)


def _status_row(
    name: str,
    latest: queries.StoredSnapshot | None,
    interval: float | None,
    now: datetime,
    firing: list[queries.FiringAlert],
) -> dict[str, Any]:
    age = None if latest is None else (now - latest.taken_at).total_seconds()
    # Without a known poll interval, data counts as stale after a minute.
    limit = STALE_INTERVALS * (interval or 20.0)
    nearest = None
    if latest is not None:
        candidates = [p for p in latest.positions if p.distance_to_liquidation is not None]
        if candidates:
            closest = min(candidates, key=lambda p: p.distance_to_liquidation or 0.0)
            nearest = {
                "symbol": closest.symbol,
                "side": closest.side,
                "liquidation_price": closest.liquidation_price,
                "exchange_liquidation_price": closest.exchange_liquidation_price,
                "distance": closest.distance_to_liquidation,
            }
    return {
        "account": name,
        "taken_at": None if latest is None else latest.taken_at,
        "age_seconds": age,
        "poll_interval": interval,
        "stale": age is None or age > limit,
        "equity": None if latest is None else latest.equity,
        "margin_ratio": None if latest is None else latest.margin_ratio,
        "exchange_margin_ratio": None if latest is None else latest.exchange_margin_ratio,
        "account_liquidation_move": None if latest is None else latest.account_liquidation_move,
        "account_move_sigmas": {
            "hourly": None if latest is None else latest.move_sigmas_hourly,
            "daily": None if latest is None else latest.move_sigmas_daily,
        },
        "positions": 0 if latest is None else len(latest.positions),
        "nearest_liquidation": nearest,
        "stops": _stops(latest),
        "firing": [
            {"rule": alert.rule_key, "severity": alert.severity, "since": alert.since}
            for alert in firing
            if alert.account == name
        ],
    }


STATUS_CSV_COLUMNS = (
    "account",
    "configured",
    "stale",
    "taken_at",
    "age_seconds",
    "poll_interval",
    "asset",
    "model",
    "equity",
    "margin_ratio",
    "exchange_margin_ratio",
    "account_liquidation_move",
    "account_move_sigmas_hourly",
    "account_move_sigmas_daily",
    "positions",
    "nearest_symbol",
    "nearest_side",
    "nearest_liquidation_price",
    "nearest_exchange_liquidation_price",
    "nearest_distance",
    "firing",
)
"""The JSON row flattened: nested objects become prefixed columns, firing alerts one cell."""


def _status_csv_row(row: dict[str, Any]) -> dict[str, Any]:
    flat = {key: value for key, value in row.items() if not isinstance(value, dict | list)}
    for horizon, sigmas in row["account_move_sigmas"].items():
        flat[f"account_move_sigmas_{horizon}"] = sigmas
    nearest = row["nearest_liquidation"] or {}
    for key in ("symbol", "side", "liquidation_price", "exchange_liquidation_price", "distance"):
        flat[f"nearest_{key}"] = nearest.get(key)
    # "margin_ratio:warning account_move:critical": one cell a spreadsheet filter can match.
    flat["firing"] = " ".join(f"{a['rule']}:{a['severity']}" for a in row["firing"])
    return flat


def _sigma_cell(row: dict[str, Any]) -> str:
    """The account move in sigmas (" = 2.2 sigma 1 d, 6.2 sigma 1 h") where the volatility was
    known."""
    sigmas = row["account_move_sigmas"]
    known = [
        f"{sigmas[horizon]:.1f} {SIGMA} {label}"
        for horizon, label in (("daily", "1 d"), ("hourly", "1 h"))
        if sigmas[horizon] is not None
    ]
    return f" = {', '.join(known)}" if known else ""


def _stops(latest: queries.StoredSnapshot | None) -> dict[str, Any] | None:
    """Positions by stop status, and which have no effective stop (none, or beyond the
    liquidation price); None when no snapshot says (never read, or stored before stops were)."""
    if latest is None or not any(p.stop_status for p in latest.positions):
        return None
    counts: dict[str, int] = {}
    unprotected = []
    for position in latest.positions:
        status = position.stop_status or "unknown"
        counts[status] = counts.get(status, 0) + 1
        if status in ("none", "beyond_liquidation"):
            unprotected.append(f"{position.symbol} {position.side}")
    return {"counts": counts, "without_effective_stop": unprotected}


def _stops_cell(row: dict[str, Any]) -> str:
    stops = row["stops"]
    if stops is None:
        return "-"
    counts = stops["counts"]
    beyond = counts.get("beyond_liquidation", 0)
    missing = counts.get("none", 0)
    if not beyond and not missing:
        return "unknown" if set(counts) == {"unknown"} else "all stopped"
    parts = [f"{missing} without stop"] if missing else []
    if beyond:
        parts.append(f"{beyond} beyond liq.")
    return ", ".join(parts)


def _age_cell(age: str, row: dict[str, Any]) -> str:
    if not row["configured"]:
        return f"{age} (removed)"
    return f"{age} STALE" if row["stale"] else age


def _equity_cell(row: dict[str, Any]) -> str:
    """Equity with its currency, and the margin model when it is not a plain single-coin pool
    (a pooled account is valued in USD; Portfolio Margin includes venue figures)."""
    text = _number(row["equity"])
    if row["equity"] is not None and row["asset"]:
        text += f" {row['asset']}"
    model = row["model"]
    if model == "portfolio":
        text += " (portfolio margin, partly venue figures)"
    elif model not in (None, "single-asset"):
        text += f" ({model})"
    return text


def _lease_fields(lease: LeaseInfo | None, now: datetime) -> dict[str, Any]:
    """Which daemon polls the account (several daemons on one PostgreSQL), for how long, and
    when its lease runs out unless renewed (a negative figure: expired, not taken over yet)."""
    if lease is None:
        return {"daemon": None}
    return {
        "daemon": lease.holder,
        "lease_acquired_at": lease.acquired_at,
        "lease_age_seconds": (now - lease.acquired_at).total_seconds(),
        "lease_expires_at": lease.expires_at,
        "lease_expires_in_seconds": (lease.expires_at - now).total_seconds(),
    }


def _lease_cell(row: dict[str, Any]) -> str:
    if row["daemon"] is None:
        return "-"
    held = format_duration(timedelta(seconds=max(0.0, row["lease_age_seconds"])))
    left = row["lease_expires_in_seconds"]
    if left < 0:
        ago = format_duration(timedelta(seconds=-left))
        return f"{row['daemon']} (held {held}, EXPIRED {ago} ago)"
    return f"{row['daemon']} (held {held}, expires in {format_duration(timedelta(seconds=left))})"


def _status_table(rows: list[dict[str, Any]]) -> None:
    leased = any(row.get("daemon") for row in rows)
    headers = [
        "account",
        "age",
        "equity",
        "margin ratio",
        "exchange ratio",
        "move",
        "nearest liquidation",
        "stops",
        "firing",
    ]
    streams = any(row.get("stream") for row in rows)
    if streams:
        headers.append("stream")
    if leased:
        headers.append("daemon (lease)")
    cells = []
    for row in rows:
        age = (
            "never"
            if row["age_seconds"] is None
            else format_duration(timedelta(seconds=row["age_seconds"]))
        )
        nearest = row["nearest_liquidation"]
        cells.append(
            [
                row["account"],
                _age_cell(age, row),
                _equity_cell(row),
                _percent(row["margin_ratio"]),
                _percent(row["exchange_margin_ratio"]),
                _percent(row["account_liquidation_move"]) + _sigma_cell(row),
                "-"
                if nearest is None
                else f"{nearest['symbol']} {_price(nearest['liquidation_price'])} ({_percent(nearest['distance'])})",
                _stops_cell(row),
                ", ".join(f"{a['rule']} ({a['severity']})" for a in row["firing"]) or "-",
            ]
        )
        if streams:
            cells[-1].append(row.get("stream") or "-")
        if leased:
            cells[-1].append(_lease_cell(row))
    print_table(
        cells,
        headers,
        optional=("stream", "daemon (lease)", "exchange ratio", "stops", "move"),
        text_columns=("firing", "stream", "daemon (lease)", "stops"),
    )


def _stream_health(settings: Settings | None) -> dict[str, dict[str, str]]:
    """How each account's marks arrive, as the daemon last wrote it to the state directory."""
    from monitor.config.streams import STREAM_STATUS_FILE

    if settings is None or not settings.streams.enabled:
        return {}
    path = settings.state_dir / STREAM_STATUS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@app.command()
def plot(
    output: Annotated[Path, typer.Option("--output", help="PNG file to write.", dir_okay=False)],
    account: AccountOption = None,
    since: SinceOption = "24h",
    until: UntilOption = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Margin ratio (with the warning and critical levels) and equity over time, as a PNG."""
    from monitor.storage import queries

    now = datetime.now(UTC)

    start, end = time_window(since, until, now)
    if output.suffix.lower() != ".png":
        raise usage_error(f"--output: {output} must end in .png")
    if not output.parent.is_dir():
        raise usage_error(f"--output: directory {output.parent} does not exist")
    try:
        from monitor.cli.chart import draw
    except ImportError as exc:
        err(f"plot needs matplotlib ({exc.name} missing): pip install 'portfolio-monitor[plot]'")
        raise typer.Exit(EXIT_FAILURE) from None
    url, settings = resolve_database_url(config, database)
    span = (end - start).total_seconds()
    # About a thousand points at most; the worst ratio of each bucket is kept.
    bucket = None if span <= 6 * 3600 else (60 if span <= 7 * 86400 else 3600)

    async def read(
        store: SqlStore,
    ) -> tuple[dict[str, list[queries.AccountPoint]], dict[str, queries.AccountInfo]]:
        infos = {info.name: info for info in await queries.accounts(store)}
        points = {
            name: await queries.account_history(store, name, start, end, bucket)
            for name in await _accounts(store, account)
        }
        return points, infos

    from monitor.cli.chart import AlertMark, Series

    read_points, infos = run_on_store(url, read)
    series = {
        name: Series(
            points,
            _equity_unit(infos.get(name)),
            # A step longer than three polls (or buckets) is the daemon not running: a gap.
            3 * max(bucket or 0, (infos[name].poll_interval if name in infos else None) or 60.0),
        )
        for name, points in read_points.items()
        if points
    }
    if not series:
        err(f"no snapshots between {stamp(start)} and {stamp(end)} UTC: nothing to plot")
        raise typer.Exit(EXIT_FAILURE)
    events = run_on_store(url, lambda store: queries.alert_history(store, start, account))
    marks = [
        AlertMark(e["account"], e["at"], e["severity"])
        for e in events
        if e["kind"] in ("firing", "escalated") and e["at"] <= end
    ]
    try:
        draw(series, _levels(settings, account), marks, output)
    except OSError as exc:
        err(f"--output: cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    sys.stdout.write(f"wrote {output}\n")


def _equity_unit(info: queries.AccountInfo | None) -> str:
    """What an account's equity is counted in: its asset, or USD for a pooled account."""
    if info is None:
        return "?"
    return info.asset if info.model in (None, "single-asset") else "USD"


def _levels(settings: Settings | None, account: str | None) -> list[tuple[str, float]]:
    """The margin-ratio alert levels to draw, from the configuration (else the defaults)."""
    from monitor.config.alerts import AlertsSettings

    alerts = AlertsSettings() if settings is None else settings.alerts
    if settings is not None and account in settings.accounts:
        alerts = alerts.merged(settings.accounts[account].alerts)
    return [(severity.value, level) for severity, level, _ in alerts.margin_ratio.below_levels()]


@app.command()
def backup(
    destination: Annotated[Path, typer.Argument(help="New file for the copy.", dir_okay=False)],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """A consistent copy of the SQLite database, safe while the daemon writes (VACUUM INTO)."""
    from monitor.storage.engine import backup_sqlite

    url, _ = resolve_database_url(config, database)
    source = database_file(url)
    if source is None:
        raise usage_error("backup copies SQLite databases; for PostgreSQL use pg_dump")
    if destination.exists():
        raise usage_error(f"{destination} already exists; choose a new file name")
    try:
        backup_sqlite(source, destination)
    except StorageError as exc:
        err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    sys.stdout.write(f"backed up {source} to {destination} ({destination.stat().st_size} bytes)\n")


@app.command()
def migrate(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Upgrade the database schema to this version (SQLite: after a backup copy)."""
    from monitor.storage.migrate import migrate as migrate_schema

    url, _ = resolve_database_url(config, database)
    database_file(url)
    try:
        before, after = asyncio.run(migrate_schema(url))
    except ConfigError as exc:
        err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    except StorageError as exc:
        err(f"database error: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    if before == after:
        sys.stdout.write(f"schema already at {after}\n")
    else:
        sys.stdout.write(f"schema upgraded from {before or '(empty)'} to {after}\n")


@app.command()
def prune(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Apply retention now: downsample old snapshots, delete what is past the longest period."""
    from monitor.storage.migrate import prepare_database
    from monitor.storage.retention import RetentionPolicy

    url, settings = resolve_database_url(config, database)
    existing_database(url)
    policy = RetentionPolicy()
    if settings is not None:
        db = settings.database
        policy = RetentionPolicy(db.retention_raw, db.retention_minute, db.retention_hour)

    async def run() -> dict[str, Any]:
        store = await prepare_database(url, auto_migrate=False, retention_policy=policy)
        try:
            return asdict(await store.prune(datetime.now(UTC)))
        finally:
            await store.close()

    try:
        report = asyncio.run(run())
    except (ConfigError, StorageError) as exc:
        err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    sys.stdout.write(json.dumps(report, default=str) + "\n")
