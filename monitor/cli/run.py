"""`portfolio-monitor run` (the daemon) and `portfolio-monitor demo` (simulator + daemon + live view)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.app import EXIT_CONFIG, EXIT_FAILURE, app
from monitor.cli.options import ConfigOption
from monitor.domain.errors import MonitorError
from monitor.errors import ConfigError
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


@contextmanager
def _logged_exit(failure: str) -> Iterator[None]:
    """Bad configuration exits 78; any other monitor error, or an OS error such as a state
    directory that cannot be created, exits 1 after `failure: reason`."""
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


@app.command()
def run(config: ConfigOption = None, log_level: LogLevelOption = "info") -> None:
    """Run the monitor until SIGTERM/SIGINT; SIGHUP reloads the configuration."""
    configure_logging(_level(log_level))
    with _logged_exit("cannot run"):
        # Validate first: a bad configuration fails in a fraction of a second, before ccxt and
        # SQLAlchemy are even imported.
        from monitor.config import load_settings

        settings = load_settings(config)
        if (no_sink := settings.notify.only_the_log_warning()) is not None:
            log.warning("%s", no_sink)
        from monitor.daemon import Daemon, DaemonOptions

        status = asyncio.run(Daemon(DaemonOptions(config_path=config)).run(settings))
    raise typer.Exit(status)


DurationOption = Annotated[
    float, typer.Option("--duration", min=5.0, help="Seconds to run before stopping by itself.")
]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", file_okay=False, help="Keep the database here (default: a new temp dir)."
    ),
]
NoLiveOption = Annotated[
    bool, typer.Option("--no-live", help="Print log lines instead of the live table (scripts, CI).")
]


@app.command()
def demo(
    duration: DurationOption = 75.0,
    state_dir: StateDirOption = None,
    no_live: NoLiveOption = False,
) -> None:
    """Simulated exchange + the daemon + a live view: watch an alert fire, escalate and resolve."""
    from monitor.cli.demo import run_demo

    configure_logging(logging.INFO if no_live else logging.WARNING)
    with _logged_exit("demo failed"):
        asyncio.run(run_demo(duration=duration, state_dir=state_dir, live=not no_live))
