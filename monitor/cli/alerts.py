"""`portfolio-monitor alerts` (the alert history and its deliveries) and `portfolio-monitor silence`
(mute an account's notifications for a while; the alert state is still tracked)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import select

from monitor.cli.app import EXIT_FAILURE, EXIT_USAGE, app
from monitor.cli.config_cmd import ConfigOption, load_or_exit
from monitor.cli.output import Format, default_format, err, print_csv, print_json, print_table
from monitor.config import Settings
from monitor.domain.errors import InvalidInput, StorageError
from monitor.domain.units import format_duration, parse_duration
from monitor.storage.engine import sqlite_path
from monitor.storage.models import Account, AlertEvent, Outbox
from monitor.storage.repository import SilenceInfo, SqlStore

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL (sqlite:///PATH or postgresql://...); default: the configuration's.",
    ),
]
FormatOption = Annotated[
    Format | None, typer.Option("--format", help="table (default at a terminal), json or csv.")
]
AccountOption = Annotated[str | None, typer.Option("--account", help="Only this account.")]

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
SILENCE_COLUMNS = ("id", "account", "until", "remaining", "created_at", "reason")

T = TypeVar("T")


def _usage(message: str) -> typer.Exit:
    err(message)
    return typer.Exit(EXIT_USAGE)


def _database_url(config: ConfigOption, database: str | None) -> tuple[str, Settings | None]:
    if database:
        return database, None
    settings = load_or_exit(config)
    return settings.database_url(), settings


def _with_store(url: str, action: Callable[[SqlStore], Awaitable[T]]) -> T:
    """Run `action` on the store at `url`; database failures exit 1 with the reason."""
    try:
        path = sqlite_path(url)
    except StorageError as exc:
        raise _usage(str(exc)) from None
    if path is not None and not path.is_file():
        err(f"no database at {path} (has the daemon run yet? see --database / [database] url)")
        raise typer.Exit(EXIT_FAILURE)

    async def run() -> T:
        store = SqlStore.open(url)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except InvalidInput as exc:
        raise _usage(str(exc)) from None
    except StorageError as exc:
        err(f"database error: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None


def _since(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from now ("24h") or an ISO-8601 time (UTC unless it says)."""
    try:
        return now - parse_duration(text)
    except InvalidInput:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _usage(f"--since: {text!r} is neither a duration (24h, 7d) nor an ISO time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment > now:
        raise _usage(f"--since: {text} is in the future")
    return moment


def _stamp(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


async def _known_account(store: SqlStore, account: str) -> bool:
    async with store.reading("reading accounts") as conn:
        return await conn.scalar(select(Account.id).where(Account.name == account)) is not None


async def _history(store: SqlStore, since: datetime, account: str | None) -> list[dict[str, Any]]:
    if account is not None and not await _known_account(store, account):
        raise InvalidInput("--account", f"no stored data for account {account!r}")
    async with store.reading("reading the alert history") as conn:
        query = (
            select(
                AlertEvent.at,
                Account.name,
                AlertEvent.rule_key,
                AlertEvent.severity,
                AlertEvent.kind,
                AlertEvent.title,
                AlertEvent.text,
                AlertEvent.facts,
            )
            .join(Account, Account.id == AlertEvent.account_id)
            .where(AlertEvent.at >= since)
            .order_by(AlertEvent.at, AlertEvent.id)
        )
        if account is not None:
            query = query.where(Account.name == account)
        events = (await conn.execute(query)).all()
        ids = sorted({str(e.facts["notification_id"]) for e in events if _notification_id(e.facts)})
        deliveries: dict[str, list[dict[str, Any]]] = {}
        for chunk in range(0, len(ids), 500):
            rows = await conn.execute(
                select(
                    Outbox.notification_id,
                    Outbox.sink,
                    Outbox.attempts,
                    Outbox.delivered_at,
                    Outbox.dead,
                    Outbox.last_error,
                )
                .where(Outbox.notification_id.in_(ids[chunk : chunk + 500]))
                .order_by(Outbox.sink)
            )
            for row in rows:
                deliveries.setdefault(row.notification_id, []).append(
                    {
                        "sink": row.sink,
                        "state": _delivery_state(row.delivered_at, row.dead),
                        "attempts": row.attempts,
                        "delivered_at": row.delivered_at,
                        "last_error": row.last_error,
                    }
                )
    return [
        {
            "at": e.at,
            "account": e.name,
            "rule": e.rule_key,
            "severity": e.severity,
            "kind": e.kind,
            "title": e.title,
            "text": e.text,
            "suppressed": (e.facts or {}).get("suppressed"),
            "notification_id": _notification_id(e.facts),
            "deliveries": deliveries.get(_notification_id(e.facts) or "", []),
            "facts": e.facts,
        }
        for e in events
    ]


def _notification_id(facts: Any) -> str | None:
    value = facts.get("notification_id") if isinstance(facts, dict) else None
    return str(value) if value else None


def _delivery_state(delivered_at: datetime | None, dead: bool) -> str:
    if delivered_at is not None:
        return "delivered"
    return "dead" if dead else "pending"


def _deliveries_text(deliveries: Sequence[dict[str, Any]]) -> str:
    parts = []
    for d in deliveries:
        tries = f" ({d['attempts']} tries)" if d["state"] != "delivered" and d["attempts"] else ""
        parts.append(f"{d['sink']}: {d['state']}{tries}")
    return ", ".join(parts)


@app.command()
def alerts(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    since: Annotated[
        str, typer.Option("--since", help="How far back: a duration (24h, 7d) or an ISO time.")
    ] = "7d",
    account: AccountOption = None,
    output: FormatOption = None,
) -> None:
    """Alert history: what fired, escalated, repeated and resolved, and whether each sink got it."""
    now = datetime.now(UTC)
    start = _since(since, now)
    url, _ = _database_url(config, database)
    rows = _with_store(url, lambda store: _history(store, start, account))
    fmt = output or default_format()
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
        err(f"no alert events since {_stamp(start)} UTC")
        return
    print_table(
        [
            [
                _stamp(row["at"]),
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
        title=f"Alert history since {_stamp(start)} UTC",
    )


def _silence_row(silence: SilenceInfo, now: datetime) -> dict[str, Any]:
    return {
        "id": silence.id,
        "account": silence.account,
        "until": silence.until,
        "remaining": format_duration(max(silence.until - now, timedelta(0))),
        "created_at": silence.created_at,
        "reason": silence.reason,
    }


async def _add_silence(
    store: SqlStore,
    account: str,
    until: datetime,
    reason: str,
    settings: Settings | None,
    now: datetime,
) -> SilenceInfo:
    if not await _known_account(store, account):
        if settings is None or account not in settings.accounts:
            known = ", ".join(settings.accounts) if settings else "see --config"
            raise InvalidInput(
                "ACCOUNT", f"unknown account {account!r} (configured: {known or 'none'})"
            )
        # A configured account the daemon has not stored yet: register it so the silence holds
        # from its very first cycle.
        configured = settings.accounts[account]
        await store.register_account(
            account,
            venue=configured.venue.value,
            asset=configured.asset,
            poll_interval=configured.poll_interval.total_seconds(),
            now=now,
        )
    return await store.add_silence(account, until=until, reason=reason, now=now)


@app.command()
def silence(
    account: Annotated[
        str | None, typer.Argument(help="The account whose notifications to silence.")
    ] = None,
    duration: Annotated[str | None, typer.Option("--for", help="How long: 30m, 2h, 1d.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown in --list).")] = "",
    list_: Annotated[
        bool, typer.Option("--list", help="List the silences in force (of ACCOUNT, if given).")
    ] = False,
    remove: Annotated[
        int | None, typer.Option("--remove", help="End the silence with this id now.")
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    output: FormatOption = None,
) -> None:
    """Silence an account's notifications for a while (alerts are still tracked and sent when it
    ends if they still fire), list silences, or end one."""
    now = datetime.now(UTC)
    modes = sum([list_, remove is not None, duration is not None])
    if modes != 1:
        raise _usage("give exactly one of: ACCOUNT --for DURATION, --list, --remove ID")
    url, settings = _database_url(config, database)

    if list_:
        silences = _with_store(url, lambda store: store.active_silences(now, account))
        rows = [_silence_row(s, now) for s in silences]
        fmt = output or default_format()
        if fmt is Format.JSON:
            print_json(rows)
        elif fmt is Format.CSV:
            print_csv(rows, SILENCE_COLUMNS)
        elif not rows:
            err("no silence in force")
        else:
            print_table(
                [
                    [str(r["id"]), r["account"], _stamp(r["until"]), r["remaining"], r["reason"]]
                    for r in rows
                ],
                ["id", "account", "until (UTC)", "remaining", "reason"],
                title="Silences in force",
            )
        return

    if remove is not None:
        if account is not None:
            raise _usage("--remove takes a silence id, not an ACCOUNT")
        if not _with_store(url, lambda store: store.remove_silence(remove)):
            raise _usage(f"--remove: no silence with id {remove} (see silence --list)")
        err(f"silence {remove} removed; notifications resume with the next poll")
        return

    assert duration is not None
    if account is None:
        raise _usage("which ACCOUNT should be silenced?")
    try:
        length = parse_duration(duration, path="--for")
    except InvalidInput as exc:
        raise _usage(str(exc)) from None
    if length <= timedelta(0):
        raise _usage("--for: a silence must last longer than 0s")
    added = _with_store(
        url, lambda store: _add_silence(store, account, now + length, reason, settings, now)
    )
    row = _silence_row(added, now)
    if (output or default_format()) is Format.TABLE:
        err(
            f"silenced {added.account} until {_stamp(added.until)} UTC ({row['remaining']}), "
            f"id {added.id}; end it early with: portfolio-monitor silence --remove {added.id}"
        )
    else:
        print_json(row)
