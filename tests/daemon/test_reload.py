"""Reload requests (SIGHUP) that arrive when a reload cannot start at once are kept, not dropped."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.daemon import Daemon, DaemonOptions


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
        for _ in range(100):
            if "configuration reloaded" in caplog.text:
                break
            await asyncio.sleep(0.1)
        assert "configuration reloaded: 0 account(s)" in caplog.text
    finally:
        daemon.stop()
        assert await asyncio.wait_for(running, 30) == 0
