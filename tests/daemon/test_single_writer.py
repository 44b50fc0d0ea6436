"""One daemon per SQLite file: a second `portfolio-monitor run` on the same database refuses to
start and names the running one; the read commands keep working beside it; kill -9 of the first
frees the file for a new daemon at once (the lock dies with the process)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from pathlib import Path

import pytest

from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import account_lines, snapshot_counts
from tests.support.daemon import BINARY, DaemonProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def _config(path: Path, state: Path, sim: SimulatorServer) -> Path:
    info = sim.accounts["main"]
    lines = [
        f"state_dir = {json.dumps(str(state))}",
        # One snapshot per poll: the test counts them (live marks store fewer).
        "[streams]",
        "enabled = false",
        *account_lines("main", info.api_key, info.api_secret, sim.base_url),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BINARY), *args], check=False, capture_output=True, text=True, timeout=60
    )


async def test_a_second_daemon_on_the_file_refuses_and_kill_9_frees_it(
    tmp_path: Path, sim: SimulatorServer
) -> None:
    state = tmp_path / "state"
    config = _config(tmp_path / "config.toml", state, sim)
    first = DaemonProcess(config, tmp_path / "first")
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    second = DaemonProcess(config, tmp_path / "second")
    try:
        await asyncio.to_thread(first.start)
        assert first.process is not None
        await wait_until(lambda: snapshot_counts(state).get("main", 0) >= 1, 20, "a snapshot")

        refused = await asyncio.to_thread(_cli, "run", "--config", str(config))
        assert refused.returncode == 1
        holder = f"pid {first.process.pid} on {socket.gethostname()}"
        assert holder in refused.stderr
        assert "already running" in refused.stderr
        assert "Traceback" not in refused.stderr

        # The first goes on polling and storing, alone (one snapshot per second, not two),
        # while the reading and maintenance commands run beside it without its lock.
        before = snapshot_counts(state)["main"]
        copy = tmp_path / "copy.db"
        started = asyncio.get_running_loop().time()
        status, history, backup, prune = await asyncio.gather(
            asyncio.to_thread(_cli, "status", "--config", str(config)),
            asyncio.to_thread(_cli, "history", "--account", "main", "--config", str(config)),
            asyncio.to_thread(_cli, "backup", str(copy), "--config", str(config)),
            asyncio.to_thread(_cli, "prune", "--config", str(config)),
        )
        assert "main" in status.stdout, status.stderr
        assert history.returncode == 0, history.stderr
        assert backup.returncode == 0, backup.stderr
        assert copy.is_file()
        assert prune.returncode == 0, prune.stderr
        await asyncio.sleep(max(0.0, 3 - (asyncio.get_running_loop().time() - started)))
        elapsed = asyncio.get_running_loop().time() - started
        assert first.process.poll() is None
        grown = snapshot_counts(state)["main"] - before
        assert elapsed - 2 <= grown <= elapsed + 1

        # No clean shutdown at all: the kernel drops the lock with the process.
        await asyncio.to_thread(first.kill)
        stored = snapshot_counts(state)["main"]
        await asyncio.to_thread(second.start)
        await wait_until(
            lambda: snapshot_counts(state)["main"] >= stored + 2,
            20,
            "snapshots from the new daemon",
            second.log,
        )
        assert await asyncio.to_thread(second.terminate) == 0
    finally:
        first.__exit__(None, None, None)
        second.__exit__(None, None, None)
