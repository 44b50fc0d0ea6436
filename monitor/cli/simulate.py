"""`portfolio-monitor simulate`: run the local exchange simulator in the foreground."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.app import EXIT_FAILURE, EXIT_USAGE, app
from monitor.cli.output import err
from monitor.domain.errors import InvalidInput

# The simulator (aiohttp) is imported when it runs (start-up time).
if TYPE_CHECKING:
    from monitor.simulator import AccountInfo, SimulatorServer


def config_snippet(base_url: str, accounts: Mapping[str, AccountInfo]) -> str:
    """`[accounts.NAME]` entries for every margin pool of the simulated accounts, ready to paste."""
    lines: list[str] = []
    for name, account in sorted(accounts.items()):
        for venue, asset in account.pools:
            # One entry per margin pool; the plain name when the account has only one.
            entry = name if len(account.pools) == 1 else f"{name}-{venue.value}-{asset}".lower()
            lines += [
                f"[accounts.{json.dumps(entry)}]",
                f"venue = {json.dumps(venue.value)}",
                f"api_key = {json.dumps(account.api_key)}",
                f"api_secret = {json.dumps(account.api_secret)}",
                f"asset = {json.dumps(asset)}",
                f"base_url = {json.dumps(base_url)}",
                "",
            ]
    return "\n".join(lines)


@app.command()
def simulate(
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            help="Scenario file (TOML or JSON). Default: the built-in demo.",
            dir_okay=False,
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65535, help="TCP port on 127.0.0.1 (0 picks a free one)."
        ),
    ] = 8900,
    speed: Annotated[
        float,
        typer.Option(
            "--speed", min=0.01, help="Run scenario time this many times faster than real time."
        ),
    ] = 1.0,
) -> None:
    """Run the local Binance/Bybit simulator until Ctrl-C and print its URL, keys and a config snippet."""
    import asyncio

    from monitor.simulator import ScaledClock, SimulatorServer, SystemClock, load_scenario

    try:
        parsed = load_scenario(scenario if scenario is not None else "demo")
    except InvalidInput as exc:
        err(f"bad scenario: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        clock = SystemClock() if speed == 1.0 else ScaledClock(speed)
        asyncio.run(_serve(SimulatorServer(parsed, port=port, clock=clock)))
    except OSError as exc:
        err(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_FAILURE) from None


async def _serve(server: SimulatorServer) -> None:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        out = sys.stdout
        out.write(
            f"Simulator for scenario {server.scenario.name!r} listening on {server.base_url}\n\n"
        )
        out.write("Accounts (replace scheme and host of every API URL with the base URL):\n")
        for name, account in sorted(server.accounts.items()):
            pools = (
                ", ".join(f"{venue.value} {asset}" for venue, asset in account.pools) or "no pools"
            )
            out.write(f"  {name} ({account.exchange}; {pools})\n")
            out.write(f"    api_key    {account.api_key}\n    api_secret {account.api_secret}\n")
        out.write("\n# Paste into config.toml:\n")
        out.write(config_snippet(server.base_url, server.accounts))
        out.write("\nPress Ctrl-C to stop.\n")
        out.flush()
        await stop.wait()
    err("simulator stopped")
