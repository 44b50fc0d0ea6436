"""`portfolio-monitor alerts`: the alert history and its deliveries; `--retry SINK` sends a sink's
held alerts now."""

from __future__ import annotations

from collections.abc import Sequence
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
    choose_format,
    parse_moment,
    resolve_database_url,
    run_on_store,
    stamp,
)
from monitor.cli.output import Format, err, print_csv, print_json, print_table
from monitor.domain.errors import InvalidInput

# SQLAlchemy and pydantic are imported inside the functions that need them (start-up time).
if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.storage.repository import SqlStore

HISTORY_COLUMNS = (
    "at",
    "account",
    "rule",
    "severity",
    "kind",
    "title",
    "suppressed",
    "notification_id",
    "deliveries",
)


def _deliveries_text(deliveries: Sequence[dict[str, Any]]) -> str:
    parts = []
    for d in deliveries:
        tries = f" ({d['attempts']} tries)" if d["state"] != "delivered" and d["attempts"] else ""
        parts.append(f"{d['sink']}: {d['state']}{tries}")
    return ", ".join(parts)


async def _retry(
    store: SqlStore, sink: str, settings: Settings | None, now: datetime
) -> tuple[int, int]:
    """Ask the daemon to try `sink` now; (dead alerts revived, alerts now waiting for it)."""
    from sqlalchemy import select

    from monitor.config.notify import DeliverySettings
    from monitor.storage.models import Outbox, SinkState

    if settings is not None:
        configured = settings.notify.sink_names()
        if sink not in configured:
            raise InvalidInput(
                "--retry", f"no sink {sink!r} is configured ({', '.join(configured) or 'none'})"
            )
    else:
        async with store.reading("reading the sinks") as conn:
            known = await conn.scalar(select(Outbox.id).where(Outbox.sink == sink).limit(1))
            known = known or await conn.scalar(select(SinkState.sink).where(SinkState.sink == sink))
        if known is None:
            raise InvalidInput("--retry", f"no alert was ever queued for a sink named {sink!r}")
    max_age = (settings.notify.delivery if settings else DeliverySettings()).max_age
    revived = await store.request_retry(sink, now, now - max_age)
    waiting = (await store.held_counts()).get(sink, 0)
    return revived, waiting


@app.command()
def alerts(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    since: SinceOption = "7d",
    account: AccountOption = None,
    output: FormatOption = None,
    retry: Annotated[
        str | None,
        typer.Option(
            "--retry",
            metavar="SINK",
            help="Send SINK's held alerts now (after fixing it): the running daemon ends its "
            "back-off within a second; dead ones younger than [notify.delivery] max_age are "
            "sent again too.",
        ),
    ] = None,
) -> None:
    """Alert history: what fired, escalated, repeated and resolved, and whether each sink got it."""
    now = datetime.now(UTC)
    fmt = choose_format(output)
    start = parse_moment(since, now, "--since")
    url, settings = resolve_database_url(config, database)
    if retry is not None:
        revived, waiting = run_on_store(url, lambda store: _retry(store, retry, settings, now))
        if fmt is Format.JSON:
            print_json({"sink": retry, "revived": revived, "waiting": waiting})
            return
        again = f", {revived} dead one(s) revived" if revived else ""
        err(
            f"{retry}: retry requested; {waiting} alert(s) waiting{again}. The running daemon "
            "sends them in order within a second (a stopped one when it starts); see "
            "portfolio-monitor status"
        )
        return
    from monitor.storage import queries

    rows = run_on_store(url, lambda store: queries.alert_history(store, start, account))
    if fmt is Format.JSON:
        print_json(rows)
        return
    if fmt is Format.CSV:
        print_csv(
            [{**row, "deliveries": _deliveries_text(row["deliveries"])} for row in rows],
            HISTORY_COLUMNS,
        )
        return
    if not rows:
        err(f"no alert events since {stamp(start)} UTC")
        return
    print_table(
        [
            [
                stamp(row["at"]),
                row["account"],
                row["rule"],
                row["severity"],
                row["kind"],
                row["title"],
                row["suppressed"] or "",
                _deliveries_text(row["deliveries"]),
            ]
            for row in rows
        ],
        ["at (UTC)", "account", "rule", "severity", "kind", "title", "held back", "deliveries"],
        title=f"Alert history since {stamp(start)} UTC",
        optional=("held back", "kind", "account", "deliveries"),
        text_columns=("account", "rule", "severity", "kind", "title", "held back", "deliveries"),
    )
