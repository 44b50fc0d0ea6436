"""Private account streams end to end: `portfolio-monitor run` as a subprocess, real ccxt.pro over
loopback to the simulator's user-data stream. A fill in the simulator reaches the daemon's
stored figures within about 2 s although REST reconciles only every 60 s; a dropped private
stream is said in the log and in `status`, the marks keep streaming, and it comes back."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import scrape_metrics
from tests.support.daemon import BINARY, DaemonProcess
from tests.support.mosquitto import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e]


def _config(path: Path, state: Path, sim: SimulatorServer, metrics_port: int) -> Path:
    info = sim.accounts["main"]
    lines = [
        f"state_dir = {json.dumps(str(state))}",
        "[metrics]",
        f'listen = "127.0.0.1:{metrics_port}"',
        "[accounts.main]",
        'venue = "binance-usdm"',
        f"api_key = {json.dumps(info.api_key)}",
        f"api_secret = {json.dumps(info.api_secret)}",
        'poll_interval = "60s"',
        f"base_url = {json.dumps(sim.base_url)}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _status(config: Path) -> dict[str, Any]:
    done = await asyncio.to_thread(
        subprocess.run,
        [str(BINARY), "status", "--config", str(config), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows[0]


async def test_a_fill_is_reflected_at_once_and_a_dropped_private_stream_is_said(
    tmp_path: Path, sim: SimulatorServer
) -> None:
    metrics_port = free_port()
    config = _config(tmp_path / "config.toml", tmp_path / "state", sim, metrics_port)
    daemon = DaemonProcess(config, tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        await wait_until(
            lambda: (
                "account=main account events stream live" in daemon.log()
                and "account=main marks stream live" in daemon.log()
            ),
            20,
            "both streams live",
            daemon.log,
        )
        before = (await _status(config))["margin_ratio"]
        # Closing the ETH long frees its maintenance margin: the margin ratio jumps.
        filled = time.monotonic()
        await sim.fill("main", "ETHUSDT", 0)

        async def moved() -> bool:
            return (await _status(config))["margin_ratio"] != before

        await wait_until(moved, 5, "the fill to reach the stored figures")
        latency = time.monotonic() - filled
        # The status command itself takes a few hundred ms per call.
        assert latency <= 3.0, f"fill reflected {latency:.1f}s later"
        print(f"fill reflected {latency:.2f}s later")

        # The private stream drops: the marks stay live, the account is not blinded.
        await sim.private.set_mode("off")
        await wait_until(
            lambda: "account=main account events stream down" in daemon.log(),
            10,
            "the private stream down",
            daemon.log,
        )
        assert "listenKey=" not in daemon.log().replace("listenKey=***", "")
        status = await _status(config)
        assert status["stream"] == "live (account events: down)"
        assert 'portfolio_monitor_stream_live{account="main"} 1.0' in scrape_metrics(metrics_port)
        await sim.private.set_mode("on")
        await wait_until(
            lambda: daemon.log().count("account=main account events stream live") == 2,
            10,
            "the private stream back",
            daemon.log,
        )
        assert (await _status(config))["stream"] == "live"
        assert daemon.log().count("account events stream down") == 1
        assert await asyncio.to_thread(daemon.terminate, 30.0) == 0
    finally:
        daemon.__exit__(None, None, None)
