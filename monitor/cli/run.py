"""`portfolio-monitor run`: the daemon."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from monitor.cli.app import app
from monitor.cli.options import ConfigOption, logged_exit
from monitor.logconfig import configure_logging

log = logging.getLogger(__name__)

LogLevelOption = Annotated[
    str, typer.Option("--log-level", help="debug, info, warning or error.", case_sensitive=False)
]


def _level(name: str) -> int:
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise typer.BadParameter(
            f"{name!r} is not one of debug, info, warning, error", param_hint="--log-level"
        )
    return level


@app.command()
def run(config: ConfigOption = None, log_level: LogLevelOption = "info") -> None:
    """Run the monitor until SIGTERM/SIGINT; SIGHUP reloads the configuration."""
    import asyncio

    configure_logging(_level(log_level))
    with logged_exit(log, "cannot run"):
        # Validate first: a bad configuration fails in a fraction of a second, before ccxt and
        # SQLAlchemy are even imported.
        from monitor.config import load_settings

        settings = load_settings(config)
        if (no_sink := settings.notify.only_the_log_warning()) is not None:
            log.warning("%s", no_sink)
        from monitor.daemon import Daemon, DaemonOptions

        status = asyncio.run(Daemon(DaemonOptions(config_path=config)).run(settings))
    raise typer.Exit(status)
