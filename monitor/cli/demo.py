"""`portfolio-monitor demo`: the built-in simulator scenario, the real daemon, a live table.

Everything is real except the exchange: ccxt talks HTTP to the local simulator, snapshots go to
an SQLite file, alerts go through the outbox to the console sink.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.app import app
from monitor.cli.options import logged_exit
from monitor.logconfig import configure_logging

# The daemon, the simulator, the live view and asyncio are imported when the demo runs (start-up
# time).
if TYPE_CHECKING:
    from monitor.cli.live_view import LiveView
    from monitor.simulator.server import AccountInfo

log = logging.getLogger(__name__)

POLL_INTERVAL = "1s"
# The dashboard's port; a free one is taken when this one is busy.
DEMO_WEB_PORT = 8080


def demo_config(
    base_url: str,
    accounts: Mapping[str, AccountInfo],
    state_dir: Path,
    web_port: int = DEMO_WEB_PORT,
) -> str:
    """The daemon configuration watching every margin pool of the simulator's accounts."""
    lines = [
        f"state_dir = {json.dumps(str(state_dir))}",
        "",
        "[notify.console]",
        "",
        "# A short debounce so the whole alert life cycle fits in a minute.",
        "[alerts.margin_ratio]",
        'for = "2s"',
        "",
        "# The demo account is leveraged so that a 2.6 % slide is dangerous: its positions sit",
        "# within a few percent of liquidation all along. These two rules would fire from the",
        "# first poll and, being more severe, hold back the margin-ratio story the demo tells.",
        "[alerts.liquidation_distance]",
        "enabled = false",
        "",
        "[alerts.account_move]",
        "enabled = false",
        "",
        "# Stop-loss coverage: the SOL short's stop ends beyond its dynamic liquidation price as",
        "# the longs lose (critical); positions without a stop warn after a short grace.",
        "[alerts.stop_loss]",
        "enabled = true",
        'grace = "10s"',
        "",
        "# Marks stream live from the simulator's websockets; REST reconciles every 2 s so that",
        "# `history` has a point every 2 s (the default is a minute).",
        "[streams]",
        'reconcile_interval = "2s"',
        "",
        "# The dashboard, on loopback only (read-only without a password_hash).",
        "[web]",
        f"listen = {json.dumps(f'127.0.0.1:{web_port}')}",
    ]
    for name, account in sorted(accounts.items()):
        for venue, asset in account.pools:
            # One config entry per margin pool; the plain name when the account has only one.
            entry = name if len(account.pools) == 1 else f"{name}-{venue.value}-{asset}"
            lines += [
                "",
                f"[accounts.{json.dumps(entry.lower())}]",
                f"venue = {json.dumps(venue.value)}",
                f"api_key = {json.dumps(account.api_key)}",
                f"api_secret = {json.dumps(account.api_secret)}",
                f"asset = {json.dumps(asset)}",
                f"poll_interval = {json.dumps(POLL_INTERVAL)}",
                f"base_url = {json.dumps(base_url)}",
            ]
    return "\n".join(lines) + "\n"


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
    import asyncio

    configure_logging(logging.INFO if no_live else logging.WARNING)
    with logged_exit(log, "demo failed"):
        asyncio.run(run_demo(duration=duration, state_dir=state_dir, live=not no_live))


async def run_demo(*, duration: float, state_dir: Path | None, live: bool) -> None:
    """Run simulator and daemon for `duration` seconds (or until Ctrl-C), then say what to try."""
    import asyncio
    import contextlib
    import tempfile

    from rich.console import Console
    from rich.live import Live

    from monitor.cli.live_view import LiveView
    from monitor.daemon import Daemon, DaemonOptions
    from monitor.simulator.server import SimulatorServer

    directory = state_dir or Path(tempfile.mkdtemp(prefix="portfolio-monitor-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    view = LiveView(log_lines=not live)
    async with SimulatorServer("demo", port=0) as sim:
        config_path = directory / "config.toml"
        web_port = _free_port(DEMO_WEB_PORT)
        config_path.write_text(demo_config(sim.base_url, sim.accounts, directory, web_port))
        sys.stdout.write(f"Dashboard: http://127.0.0.1:{web_port}/\n")
        sys.stdout.flush()
        daemon = Daemon(DaemonOptions(config_path=config_path, stop_grace=3), [view])
        running = asyncio.create_task(daemon.run(), name="daemon")
        deadline = time.monotonic() + duration
        try:
            if live:
                started = time.monotonic()

                def caption() -> str:
                    elapsed = time.monotonic() - started
                    return (
                        f"portfolio-monitor demo: {elapsed:.0f}/{duration:.0f} s, simulator "
                        f"{sim.base_url}, dashboard http://127.0.0.1:{web_port}/, "
                        f"database {directory / 'monitor.db'} (Ctrl-C stops)"
                    )

                with Live(
                    view.render(caption(), console.width), console=console, refresh_per_second=4
                ) as screen:
                    while not running.done() and time.monotonic() < deadline:
                        await asyncio.sleep(0.25)
                        screen.update(view.render(caption(), console.width))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(running), duration)
        finally:
            daemon.stop()
            await running
    _epilogue(directory, config_path, view)


def _free_port(preferred: int) -> int:
    """`preferred` when nothing listens there, else a port the kernel says is free."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port for the dashboard")


def _epilogue(directory: Path, config_path: Path, view: LiveView) -> None:
    import shutil

    fired = sum(1 for _, kind, _, _ in view.history if kind == "firing")
    # After `make demo` the command lives in .venv/bin, which is rarely on PATH: show what works.
    command_name = "portfolio-monitor" if shutil.which("portfolio-monitor") else sys.argv[0]
    resolved = sum(1 for _, kind, _, _ in view.history if kind == "resolved")
    # Plain writes, not rich: paths must stay on one line to be pasted.
    lines = [
        "",
        f"Demo finished: {fired} alert notification(s) fired, {resolved} resolved.",
        f"Database: {directory / 'monitor.db'}",
        "Try (the daemon has stopped: a few seconds from now `status` calls the data stale and exits 1):",
        *(
            f"  {command_name} {command} --config {config_path}"
            for command in ("status", "history --since 10m", "alerts")
        ),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
