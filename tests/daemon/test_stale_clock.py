"""Stale by the clock: `portfolio-monitor run` as a subprocess against the simulator, with a JSON
webhook. An exchange that stops answering mid-request (a 90 s hang) raises the stale alert at
`after x poll_interval` after the last good data, not when the hung request gives up; the request
giving up later does not send it again, and data flowing again resolves it once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import account_lines, json_webhook_lines
from tests.support.daemon import DaemonProcess
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e]


def _config(path: Path, state: Path, sim: SimulatorServer, hook: WebhookReceiver) -> Path:
    info = sim.accounts["main"]
    lines = [
        f"state_dir = {json.dumps(str(state))}",
        # The poll path: with live marks REST would only reconcile once a minute.
        "[streams]",
        "enabled = false",
        *json_webhook_lines(hook.url),
        "[alerts.stale]",
        "after = 3",
        *account_lines("main", info.api_key, info.api_secret, sim.base_url),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _stale(payloads: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [p for p in payloads if p.get("rule") == "stale" and p.get("event") == event]


async def test_a_hung_exchange_raises_stale_by_the_clock_once_and_it_resolves(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver
) -> None:
    config = _config(tmp_path / "config.toml", tmp_path / "state", sim, hook)
    daemon = DaemonProcess(config, tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        await wait_until(
            lambda: daemon.log().count("account=main cycle ") >= 2,
            20,
            "good polls",
            daemon.log,
        )
        # The next request hangs for 90 s; the fetch gives up at its own deadline (10 s for a
        # 1 s poll), far later than the stale level (3 s).
        skipped = daemon.log().count("that run was skipped")
        sim.inject_fault("timeout", account="main", delay=90, count=1)
        await wait_until(
            lambda: daemon.log().count("that run was skipped") > skipped,
            10,
            "a poll stuck on the hung request",
            daemon.log,
        )

        firing = await hook.wait_for(lambda p: bool(_stale([p], "firing")), within=8)
        arrived = datetime.now(UTC)
        last_data = datetime.fromisoformat(str(firing["facts"]["last_data_at"]))
        judged = datetime.fromisoformat(firing["ts"])
        # Judged at 3 poll intervals of age (± 1 s), and delivered right away, while the
        # request still hangs.
        assert timedelta(seconds=3) <= judged - last_data <= timedelta(seconds=4)
        assert arrived - last_data <= timedelta(seconds=5)
        assert "has not answered" in firing["message"]
        assert "poll failed" not in daemon.log()

        # The hung fetch gives up, then the next poll gets data: one resolved notice, and the
        # firing one was never sent twice.
        await wait_until(lambda: "poll failed" in daemon.log(), 15, "the fetch deadline")
        await hook.wait_for(lambda p: bool(_stale([p], "resolved")), within=10)
        await asyncio.sleep(1.5)  # letting time pass is the point: a duplicate would arrive by now
        assert len(_stale(hook.payloads, "firing")) == 1
        assert len(_stale(hook.payloads, "resolved")) == 1
        assert len({p["id"] for p in hook.payloads}) == len(hook.payloads)
        assert await asyncio.to_thread(daemon.terminate, 30.0) == 0
    finally:
        daemon.__exit__(None, None, None)
