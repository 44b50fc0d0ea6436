"""`portfolio-monitor status`: the latest snapshot of every account, the alert sinks that do
not take alerts, and whether the database takes writes; `--watch` draws it again and again."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli.app import EXIT_FAILURE, app
from monitor.cli.options import (
    ConfigOption,
    DatabaseOption,
    FormatOption,
    choose_format,
    database_errors,
    database_file,
    existing_database,
    resolve_database_url,
    run_on_store,
    stamp,
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
)
from monitor.domain.units import format_duration, format_figure
from monitor.domain.volatility import SIGMA

# The storage layer (SQLAlchemy, Alembic) and the configuration (pydantic) are imported inside
# the commands: `--help` and the other commands must not pay for them (see bench/startup.py).
if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.storage.leases import LeaseInfo
    from monitor.storage.status_read import Firing, LatestSnapshot, StatusData

# A poll is late after this many intervals (the status command's staleness rule).
STALE_INTERVALS = 3


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
    import signal
    import threading
    import time

    from rich.console import Console

    console = Console()
    stop = threading.Event()

    def ctrl_c(signum: int, frame: object) -> None:
        # The first Ctrl-C ends the view after the draw in progress (a read interrupted halfway
        # would print a traceback instead of a clean exit 0); a second one interrupts at once,
        # for a database that does not answer.
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        while not stop.is_set():
            started = time.monotonic()
            if console.is_terminal:
                console.clear()
            sys.stdout.write(
                f"portfolio-monitor status at {stamp(datetime.now(UTC))} UTC, every "
                f"{seconds:g} s (Ctrl-C ends)\n"
            )
            _status_once(url, settings, Format.TABLE)
            sys.stdout.flush()
            stop.wait(max(0.0, seconds - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stdout.write("\n")


def _status_once(url: str, settings: Settings | None, chosen: Format) -> bool:
    """Print the status once; True when it needs a person (stale data, sinks, storage)."""
    from monitor.storage import status_read

    now = datetime.now(UTC)
    configured = {} if settings is None else dict(settings.accounts)
    streams = _stream_health(settings)
    file = status_read.plain_sqlite_path(url)
    if file is None:
        # PostgreSQL (or an SQLite URL with options): the same reads through SQLAlchemy.
        data = run_on_store(url, status_read.read_store)
        file = database_file(url)
    else:
        existing_database(url)
        with database_errors():
            data = status_read.read_file(file)
    infos = {info.name: info for info in data.accounts}
    held = {lease.account: lease for lease in data.leases}
    rows = []
    for name in sorted(set(infos) | set(configured)):
        info = infos.get(name)
        latest = data.latest.get(name)
        if name in configured:
            interval: float | None = configured[name].poll_interval.total_seconds()
        else:
            interval = info.poll_interval if info else None
        if settings is not None and settings.streams.enabled and interval is not None:
            # Live marks store a snapshot only at the reconciliation cadence.
            reconcile = settings.streams.reconcile_interval.total_seconds()
            interval = max(interval, reconcile)
        row = _status_row(name, latest, interval, now, data.firing)
        row["stream"] = streams.get(name, {}).get("stream")
        row["asset"] = info.asset if info else None
        row["model"] = info.model if info else None
        # An account removed from the configuration keeps its history but is no longer
        # polled; it must not make the health check fail for ever.
        row["configured"] = settings is None or name in configured
        row.update(_lease_fields(held.get(name), now))
        rows.append(row)
    sinks = _troubled_sinks(data, settings)
    if chosen is Format.JSON:
        print_json(rows)
    elif chosen is Format.CSV:
        print_csv([_status_csv_row(row) for row in rows], STATUS_CSV_COLUMNS)
    elif not rows:
        err("no accounts stored yet (has the daemon run?)")
    else:
        _status_table(rows)
    sinks_need_a_person = _report_sinks(sinks, settings, chosen)
    storage = None if file is None else status_read.sqlite_write_trouble(file)
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


def _troubled_sinks(data: StatusData, settings: Settings | None) -> list[dict[str, Any]]:
    """Configured sinks (every stored one without a configuration) that are failing or disabled,
    as the daemon last recorded them, with how many alerts wait for each."""
    troubled = data.troubled_sinks
    if troubled is None:
        return []  # a database from before sink states were stored: nothing known
    names = settings.notify.sink_names() if settings is not None else sorted(troubled)
    return [
        {
            "sink": name,
            "state": troubled[name].state,
            "since": troubled[name].since,
            "next_attempt_at": troubled[name].next_attempt_at,
            "last_error": troubled[name].last_error,
            "held": data.held.get(name, 0),
        }
        for name in names
        if name in troubled
    ]


def _report_sinks(
    troubled: list[dict[str, Any]], settings: Settings | None, chosen: Format
) -> bool:
    """Show the sinks that do not take alerts; True when a person must act: one is disabled
    (a permanent error) or every remote sink fails (alerts reach no one)."""
    if not troubled:
        return False
    from monitor.delivery import LOCAL_SINKS

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
    latest: LatestSnapshot | None,
    interval: float | None,
    now: datetime,
    firing: list[Firing],
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
        f"{format_figure(sigmas[horizon])} {SIGMA} {label}"
        for horizon, label in (("daily", "1 d"), ("hourly", "1 h"))
        if sigmas[horizon] is not None
    ]
    return f" = {', '.join(known)}" if known else ""


def _stops(latest: LatestSnapshot | None) -> dict[str, Any] | None:
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
    text = number_cell(row["equity"])
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
                percent_cell(row["margin_ratio"]),
                percent_cell(row["exchange_margin_ratio"]),
                percent_cell(row["account_liquidation_move"]) + _sigma_cell(row),
                "-"
                if nearest is None
                else f"{nearest['symbol']} {price_cell(nearest['liquidation_price'])} ({percent_cell(nearest['distance'])})",
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
    if settings is None or not settings.streams.enabled:
        return {}
    from monitor.config.streams import STREAM_STATUS_FILE

    path = settings.state_dir / STREAM_STATUS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
