"""`portfolio-monitor plot`: margin ratio and equity over time, as a PNG."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.app import EXIT_FAILURE, app
from monitor.cli.options import (
    AccountOption,
    ConfigOption,
    DatabaseOption,
    SinceOption,
    UntilOption,
    accounts_to_read,
    resolve_database_url,
    run_on_store,
    stamp,
    time_window,
    usage_error,
)
from monitor.cli.output import err

# The storage layer (SQLAlchemy, Alembic) and the configuration (pydantic) are imported inside
# the commands: `--help` and the other commands must not pay for them (see bench/startup.py).
if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.storage import queries
    from monitor.storage.repository import SqlStore


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
            for name in await accounts_to_read(store, account)
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
