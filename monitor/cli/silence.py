"""`portfolio-monitor silence`: mute an account's notifications for a while (the alert state is
still tracked), list the silences in force, or end one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli.app import app
from monitor.cli.options import (
    ConfigOption,
    DatabaseOption,
    FormatOption,
    choose_format,
    resolve_database_url,
    run_on_store,
    stamp,
    usage_error,
)
from monitor.cli.output import Format, err, print_csv, print_json, print_table
from monitor.domain.errors import InvalidInput
from monitor.domain.units import format_duration, parse_duration

# SQLAlchemy and pydantic are imported inside the functions that need them (start-up time).
if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.storage.repository import SilenceInfo, SqlStore

SILENCE_COLUMNS = ("id", "account", "until", "remaining", "created_at", "reason")
MAX_ID = 2**63 - 1


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
    from monitor.storage import queries

    if not await queries.known_account(store, account):
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
    fmt = choose_format(output)
    modes = sum([list_, remove is not None, duration is not None])
    if modes != 1:
        raise usage_error("give exactly one of: ACCOUNT --for DURATION, --list, --remove ID")
    url, settings = resolve_database_url(config, database)

    if list_:
        silences = run_on_store(url, lambda store: store.active_silences(now, account))
        rows = [_silence_row(s, now) for s in silences]
        if fmt is Format.JSON:
            print_json(rows)
        elif fmt is Format.CSV:
            print_csv(rows, SILENCE_COLUMNS)
        elif not rows:
            err("no silence in force")
        else:
            print_table(
                [
                    [str(r["id"]), r["account"], stamp(r["until"]), r["remaining"], r["reason"]]
                    for r in rows
                ],
                ["id", "account", "until (UTC)", "remaining", "reason"],
                title="Silences in force",
            )
        return

    if remove is not None:
        if account is not None:
            raise usage_error("--remove takes a silence id, not an ACCOUNT")
        # An id past the 64-bit range cannot name a stored silence (and the driver would raise).
        if not (0 < remove <= MAX_ID and run_on_store(url, lambda s: s.remove_silence(remove))):
            raise usage_error(f"--remove: no silence with id {remove} (see silence --list)")
        err(f"silence {remove} removed; notifications resume with the next poll")
        return

    assert duration is not None
    if account is None:
        raise usage_error("which ACCOUNT should be silenced?")
    try:
        length = parse_duration(duration, path="--for")
    except InvalidInput as exc:
        raise usage_error(str(exc)) from None
    if length <= timedelta(0):
        raise usage_error("--for: a silence must last longer than 0s")
    try:
        until = now + length
    except OverflowError:
        raise usage_error(f"--for: {duration!r} ends after the year 9999") from None
    added = run_on_store(
        url, lambda store: _add_silence(store, account, until, reason, settings, now)
    )
    row = _silence_row(added, now)
    if fmt is Format.TABLE:
        err(
            f"silenced {added.account} until {stamp(added.until)} UTC ({row['remaining']}), "
            f"id {added.id}; end it early with: portfolio-monitor silence --remove {added.id}"
        )
    elif fmt is Format.CSV:
        print_csv([row], SILENCE_COLUMNS)
    else:
        print_json(row)
