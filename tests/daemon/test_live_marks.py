"""Live marks end to end: `portfolio-monitor run` as a subprocess, real ccxt.pro over loopback to
the simulator's websocket side, a JSON webhook. With the shipped alert rules and a 60 s poll,
the emergency alert follows a price move within seconds; a dropped stream falls back to
polling (log, `status`, metrics) and recovers by itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import btc_price_for_ratio, scrape_metrics
from tests.support.daemon import BINARY, DaemonProcess
from tests.support.mosquitto import free_port
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e]


def _config(
    path: Path, state: Path, sim: SimulatorServer, hook: WebhookReceiver, metrics_port: int
) -> Path:
    """The shipped alert rules and stream settings; REST polls once a minute."""
    info = sim.accounts["main"]
    lines = [
        f"state_dir = {json.dumps(str(state))}",
        "[metrics]",
        f'listen = "127.0.0.1:{metrics_port}"',
        "[notify.webhooks.hook]",
        'kind = "json"',
        f"url = {json.dumps(hook.url)}",
        "[accounts.main]",
        'venue = "binance-usdm"',
        f"api_key = {json.dumps(info.api_key)}",
        f"api_secret = {json.dumps(info.api_secret)}",
        'poll_interval = "60s"',
        f"base_url = {json.dumps(sim.base_url)}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _firing(payload: dict[str, Any], severity: str) -> bool:
    return (
        payload.get("rule") == "margin_ratio"
        and payload.get("event") in ("firing", "escalated")
        and payload.get("severity") == severity
    )


async def _status(config: Path) -> list[dict[str, Any]]:
    done = await asyncio.to_thread(
        subprocess.run,
        [str(BINARY), "status", "--config", str(config), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def _position_requests(sim: SimulatorServer) -> int:
    return sum(1 for r in sim.request_log if r.account == "main" and "positionRisk" in r.path)


async def test_emergency_alert_follows_a_price_move_within_seconds(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver
) -> None:
    config = _config(tmp_path / "config.toml", tmp_path / "state", sim, hook, free_port())
    daemon = DaemonProcess(config, tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        await wait_until(
            lambda: "account=main marks stream live" in daemon.log(), 20, "live marks", daemon.log
        )
        polls = _position_requests(sim)
        moved = time.monotonic()
        sim.set_price("BTC", btc_price_for_ratio(1.1))  # below the 120 % emergency level
        await hook.wait_for(lambda p: _firing(p, "emergency"), within=5)
        latency = time.monotonic() - moved
        # The shipped rules reach the sink within 5 s of the move, with REST polled once a
        # minute: the marks came over the websocket.
        assert latency <= 5.0, f"emergency alert {latency:.1f}s after the move"
        assert not [p for p in hook.payloads if _firing(p, "warning") or _firing(p, "critical")]
        assert _position_requests(sim) == polls
        # A snapshot was stored with the transition (not only at the reconciliation cadence).
        rows = await _status(config)
        assert rows[0]["margin_ratio"] == pytest.approx(1.1, abs=0.01)
        assert rows[0]["stream"] == "live"
        assert await asyncio.to_thread(daemon.terminate, 30.0) == 0
        assert (await _status(config))[0]["stream"] == "stopped"
    finally:
        daemon.__exit__(None, None, None)


async def test_a_dropped_stream_falls_back_to_polling_and_recovers(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver
) -> None:
    metrics_port = free_port()
    config = _config(tmp_path / "config.toml", tmp_path / "state", sim, hook, metrics_port)
    # A 2 s poll makes the fallback visible quickly.
    config.write_text(config.read_text().replace('poll_interval = "60s"', 'poll_interval = "2s"'))
    daemon = DaemonProcess(config, tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        await wait_until(
            lambda: "account=main marks stream live" in daemon.log(), 20, "live marks", daemon.log
        )
        assert 'portfolio_monitor_stream_live{account="main"} 1.0' in scrape_metrics(metrics_port)
        await sim.streams.set_mode("off")
        await wait_until(
            lambda: "polling every 2s until it recovers" in daemon.log(),
            10,
            "the fallback to polling",
            daemon.log,
        )
        assert daemon.log().count("polling every 2s until it recovers") == 1

        async def status_says_polling() -> bool:
            rows = await _status(config)
            return str(rows[0]["stream"]).startswith("polling: binance-usdm mark stream")

        # The streams file follows the log line within a write gap, which a loaded machine
        # stretches: wait for it rather than read it once.
        await wait_until(status_says_polling, 10, "status showing the fallback", daemon.log)
        assert 'portfolio_monitor_stream_live{account="main"} 0.0' in scrape_metrics(metrics_port)
        # Polling at the account's interval again; the stale rule stays quiet.
        await wait_until(
            lambda: daemon.log().count("account=main cycle ") >= 3, 10, "polls", daemon.log
        )
        sim.set_price("BTC", btc_price_for_ratio(1.1))
        await hook.wait_for(lambda p: _firing(p, "emergency"), within=8)

        await sim.streams.set_mode("on")
        await wait_until(
            lambda: daemon.log().count("account=main marks stream live") >= 2,
            40,
            "the stream back",
            daemon.log,
        )
        assert (await _status(config))[0]["stream"] == "live"
        assert not [p for p in hook.payloads if p.get("rule") == "stale"]
        assert await asyncio.to_thread(daemon.terminate, 30.0) == 0
    finally:
        daemon.__exit__(None, None, None)
