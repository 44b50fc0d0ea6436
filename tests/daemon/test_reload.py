"""Reload requests (SIGHUP) are kept, not dropped: one that arrives when a reload cannot start at
once, and one that the database refused part-way."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.daemon import Daemon, DaemonOptions
from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import SCENARIO, account_lines, snapshot_counts
from tests.support.waiting import wait_until


async def test_sighup_during_start_up_reloads_once_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n')
    daemon = Daemon(DaemonOptions(config_path=config, handle_signals=False))
    settings = load_settings(config)
    # The file changes after `run` read it and SIGHUP comes before the daemon is up (opening
    # and migrating a large database can take a while).
    config.write_text(config.read_text() + '[alerts.margin_ratio]\nwarning_below = "400%"\n')
    daemon.request_reload()
    caplog.set_level(logging.INFO, logger="monitor.daemon")
    running = asyncio.create_task(daemon.run(settings))
    try:
        await wait_until(lambda: "configuration reloaded" in caplog.text, 10, "the reload")
        assert "configuration reloaded: 0 account(s)" in caplog.text
    finally:
        daemon.stop()
        assert await asyncio.wait_for(running, 30) == 0


def _config(path: Path, sim: SimulatorServer, accounts: tuple[str, ...]) -> None:
    lines = [f"state_dir = {json.dumps(str(path.parent))}"]
    for name in accounts:
        info = sim.accounts[name]
        lines += account_lines(name, info.api_key, info.api_secret, sim.base_url)
    path.write_text("\n".join(lines) + "\n")


async def test_reload_that_meets_a_locked_database_is_retried_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.daemon")
    config = tmp_path / "config.toml"
    async with SimulatorServer(SCENARIO, port=0) as sim:
        _config(config, sim, ("main",))
        daemon = Daemon(DaemonOptions(config_path=config, handle_signals=False, reload_retry=0.5))
        running = asyncio.create_task(daemon.run())
        try:
            await wait_until(lambda: snapshot_counts(tmp_path).get("main", 0) >= 1, 20, "main")
            # A backup or a person's sqlite3 shell holds the write lock while "spare" is added.
            lock = sqlite3.connect(tmp_path / "monitor.db", isolation_level=None, timeout=10)
            lock.execute("BEGIN EXCLUSIVE")
            try:
                _config(config, sim, ("main", "spare"))
                daemon.request_reload()
                await wait_until(lambda: "reload failed part-way" in caplog.text, 20, "the failure")
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            # No second SIGHUP: the reload is retried and "spare" gets watched.
            await wait_until(lambda: snapshot_counts(tmp_path).get("spare", 0) >= 1, 20, "spare")
        finally:
            daemon.stop()
            assert await asyncio.wait_for(running, 30) == 0
