"""The command line as a user runs it against the simulator: a config file for some of its
accounts, and the real command in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from monitor.simulator.server import SimulatorServer


def write_config(sim: SimulatorServer, path: Path, pools: list[tuple[str, str, str, str]]) -> Path:
    """A config at `path` with one section per (name, simulator account, venue, asset)."""
    sections = []
    for name, account, venue, asset in pools:
        info = sim.accounts[account]
        sections.append(
            f'[accounts.{name}]\nvenue = "{venue}"\napi_key = "{info.api_key}"\n'
            f'api_secret = "{info.api_secret}"\nbase_url = "{sim.base_url}"\nasset = "{asset}"\n'
        )
    path.write_text(f'state_dir = "{path.parent}"\n' + "\n".join(sections))
    return path


async def cli(*args: str) -> tuple[int, str, str]:
    """`python -m monitor ARGS` in a subprocess: exit code, stdout, stderr."""
    # Wide enough that rich does not abbreviate table cells.
    environment = {**os.environ, "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
