"""The command-line plumbing every command shares: option types, the configuration and database
they point at, time windows, output formats, usage errors, and running a query on the store."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from monitor.cli.app import EXIT_CONFIG, EXIT_FAILURE, EXIT_USAGE
from monitor.cli.output import Format, default_format, err
from monitor.domain.errors import InvalidInput, MonitorError
from monitor.domain.units import parse_duration
from monitor.errors import ConfigError, StorageError

# The configuration (pydantic) and the store (SQLAlchemy) are imported where a command needs
# them: `--help` and `calc` must not pay for them (see bench/startup.py).
if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.storage.repository import SqlStore

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Configuration file (default: $PORTFOLIO_MONITOR_CONFIG, else /etc/portfolio-monitor/config.toml).",
        dir_okay=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL (sqlite:///PATH or postgresql://user@host/db); default: the configuration's.",
    ),
]
FormatOption = Annotated[
    str | None, typer.Option("--format", help="table (default at a terminal), json or csv.")
]
TableOrJsonOption = Annotated[
    str | None,
    typer.Option("--format", help="table (default at a terminal) or json (default when piped)."),
]
AccountOption = Annotated[
    str | None, typer.Option("--account", help="Only this account (default: every account).")
]
SinceOption = Annotated[
    str, typer.Option("--since", help="Start: a duration back from now (24h, 7d) or an ISO time.")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="End: a duration back from now or an ISO time.")
]

EVERY_FORMAT = (Format.TABLE, Format.JSON, Format.CSV)
TABLE_OR_JSON = (Format.TABLE, Format.JSON)


@contextmanager
def logged_exit(log: logging.Logger, failure: str) -> Iterator[None]:
    """Run the block: bad configuration exits 78; any other monitor error, or an OS error such as
    a state directory that cannot be created, exits 1 after `failure: reason`; both logged on `log`."""
    try:
        yield
    except ConfigError as exc:
        # EX_CONFIG: systemd's RestartPreventExitStatus=78 stops a restart loop on a bad config.
        # Logged, not printed: under journald it then carries the error priority.
        log.error("configuration error:\n%s", exc)
        raise typer.Exit(EXIT_CONFIG) from None
    except MonitorError as exc:
        log.error("%s: %s", failure, exc)
        raise typer.Exit(EXIT_FAILURE) from None
    except OSError as exc:
        # The machine, not the code: e.g. a state_dir the user cannot create (running as
        # oneself with the default /var/lib/portfolio-monitor). One line, not a traceback.
        log.error("%s: %s", failure, exc)
        raise typer.Exit(EXIT_FAILURE) from None


def usage_error(message: str) -> typer.Exit:
    """Bad command-line input: print `message` on stderr; raise the result to exit 2."""
    err(message)
    return typer.Exit(EXIT_USAGE)


def load_or_exit(path: Path | None) -> Settings:
    """The configuration, or exit 78 with the problems (each naming its key) on stderr."""
    from monitor.config import load_settings

    try:
        return load_settings(path)
    except ConfigError as exc:
        sys.stderr.write(f"configuration error:\n{exc}\n")
        raise typer.Exit(EXIT_CONFIG) from None


def resolve_database_url(config: Path | None, database: str | None) -> tuple[str, Settings | None]:
    """The database URL (--database, else the configuration's) and the configuration, which is
    loaded when --config is given or --database is not (a bad one exits 78)."""
    settings = None if config is None and database is not None else load_or_exit(config)
    if database is not None:
        return database, settings
    assert settings is not None
    return settings.database_url(), settings


def choose_format(text: str | None, allowed: Sequence[Format] = EVERY_FORMAT) -> Format:
    """The --format asked for (case-insensitive), else a table at a terminal and JSON when piped."""
    if text is None:
        chosen = default_format()
        return chosen if chosen in allowed else Format.JSON
    by_name = {f.value: f for f in allowed}
    if text.lower() not in by_name:
        raise usage_error(f"--format: {text!r} is not one of {', '.join(by_name)}")
    return by_name[text.lower()]


def parse_moment(text: str, now: datetime, option: str) -> datetime:
    """A duration back from now ("24h") or an ISO-8601 time (UTC unless it says otherwise)."""
    try:
        back = parse_duration(text)
    except InvalidInput:
        pass
    else:
        try:
            return now - back
        except OverflowError:
            # "9999999d" parses, but reaches before year 1: every stored moment is after that.
            return datetime.min.replace(tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise usage_error(
            f"{option}: {text!r} is neither a duration (24h, 7d) nor an ISO time "
            "(2026-03-01T12:00:00)"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment > now:
        raise usage_error(f"{option}: {text} is in the future")
    return moment.astimezone(UTC)


def time_window(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """--since and --until (default: now) as a UTC window; the start must come first."""
    start = parse_moment(since, now, "--since")
    end = now if until is None else parse_moment(until, now, "--until")
    if start >= end:
        raise usage_error(f"--since ({stamp(start)}) must be before --until ({stamp(end)})")
    return start, end


def stamp(moment: datetime | None) -> str:
    """A moment as UTC wall-clock time to the second (empty when there is none)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def database_file(url: str) -> Path | None:
    """The SQLite file of `url` (None for PostgreSQL); a URL we cannot use exits 2."""
    from monitor.storage.status_read import plain_sqlite_path

    plain = plain_sqlite_path(url)
    if plain is not None:
        return plain
    # Imported here: commands that never touch the database don't pay for SQLAlchemy, nor does
    # one on a plain SQLite URL.
    from monitor.storage.engine import sqlite_path

    try:
        return sqlite_path(url)
    except StorageError as exc:
        raise usage_error(str(exc)) from None


def existing_database(url: str) -> None:
    """Exit 2 for a URL we cannot use, 1 when its SQLite file does not exist (rather than let
    SQLite create an empty one)."""
    path = database_file(url)
    if path is not None and not path.is_file():
        err(f"no database at {path} (has the daemon run yet? see --database / [database] url)")
        raise typer.Exit(EXIT_FAILURE)


async def accounts_to_read(store: SqlStore, account: str | None) -> list[str]:
    """The account --account names, else every stored account."""
    from monitor.storage import queries

    # An unknown --account is reported by the history query itself, naming the stored ones.
    if account is not None:
        return [account]
    return [info.name for info in await queries.accounts(store)]


def run_on_store(url: str, action: Callable[[SqlStore], Awaitable[T]]) -> T:
    """Run `action` on the existing database at `url`: a bad URL or bad input exits 2, a missing
    SQLite file or a database failure exits 1."""
    import asyncio

    from monitor.storage.repository import SqlStore

    existing_database(url)

    async def run() -> T:
        store = SqlStore.open(url)
        try:
            return await action(store)
        finally:
            await store.close()

    with database_errors():
        return asyncio.run(run())


@contextmanager
def database_errors() -> Iterator[None]:
    """Bad input (an unknown account) exits 2, a database failure exits 1."""
    try:
        yield
    except InvalidInput as exc:
        raise usage_error(str(exc)) from None
    except StorageError as exc:
        err(f"database error: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None
