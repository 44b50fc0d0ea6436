"""A webhook that answers 410 Gone and later comes back, with the daemon as a subprocess: every
alert fired meanwhile arrives afterwards, in order, once; `alerts --retry` sends a held alert at
once; alerts held past the age limit arrive as one summary; while the only remote sink fails,
`status`, the systemd STATUS= line, the metrics and the journal say so."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import (
    MARGIN_RATIO_ONLY,
    account_lines,
    btc_price_for_ratio,
    database,
    json_webhook_lines,
    scrape_metrics,
)
from tests.support.daemon import BINARY, DaemonProcess
from tests.support.mosquitto import free_port
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e]

WARNING_PRICE = btc_price_for_ratio(2.4)
CRITICAL_PRICE = btc_price_for_ratio(1.35)


def _config(
    tmp_path: Path,
    sim: SimulatorServer,
    hook: WebhookReceiver,
    *,
    retry: str,
    max_age: str,
    metrics_port: int | None = None,
) -> Path:
    """One account, 1 s polls; the JSON webhook is the only remote sink (the console is local)."""
    info = sim.accounts["main"]
    lines = [
        f"state_dir = {json.dumps(str(tmp_path / 'state'))}",
        *(["[metrics]", f'listen = "127.0.0.1:{metrics_port}"'] if metrics_port else []),
        "[notify.console]",
        *json_webhook_lines(hook.url, retry_initial=retry, retry_max=retry),
        f'max_age = "{max_age}"',
        *MARGIN_RATIO_ONLY,
        *account_lines("main", info.api_key, info.api_secret, sim.base_url),
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _hook_rows(state: Path) -> list[dict[str, Any]]:
    """The webhook's outbox rows, oldest first."""
    with contextlib.closing(sqlite3.connect(database(state), timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT notification_id, delivered_at, dead, last_error FROM outbox "
            "WHERE sink = 'hook' ORDER BY created_at, id"
        ).fetchall()
    return [dict(row) for row in rows]


def _margin(payloads: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(p["event"], p["severity"]) for p in payloads if p.get("rule") == "margin_ratio"]


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal: at 80 columns the error column wraps between words ("HTTP" / "410").
    return await asyncio.to_thread(
        subprocess.run,
        [str(BINARY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_a_410_hook_that_comes_back_gets_every_missed_alert_in_order_once(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver
) -> None:
    metrics_port = free_port()
    config = _config(tmp_path, sim, hook, retry="1s", max_age="24h", metrics_port=metrics_port)
    state = tmp_path / "state"
    daemon = DaemonProcess(config, tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        hook.fail_with = 410
        # Warning, escalation to critical, resolved: three alerts while the hook is gone.
        for price, count in ((WARNING_PRICE, 1), (CRITICAL_PRICE, 2), (None, 3)):
            sim.set_price("BTC", price)
            await wait_until(
                lambda count=count: len(_hook_rows(state)) >= count,  # type: ignore[misc]
                20,
                f"{count} alert(s) queued for the hook",
                daemon.log,
            )
        assert hook.payloads == []
        assert not any(row["dead"] for row in _hook_rows(state))  # held, not dead-lettered

        # Someone who looks anywhere sees that alerts reach no one.
        await wait_until(
            lambda: any("ALERTS REACH NO ONE" in f for f in daemon.notify.fields()),
            10,
            "STATUS= naming the failing sink",
            daemon.log,
        )
        status = await _cli("status", "--config", str(config), "--format", "table")
        assert status.returncode == 1, status
        assert "Alert sinks not taking alerts" in status.stdout
        assert "hook" in status.stdout
        assert "disabled" in status.stdout
        assert "HTTP 410" in status.stdout
        assert "ALERTS REACH NO ONE" in status.stderr
        assert "alerts --retry hook" in status.stderr
        assert 'portfolio_monitor_sink_up{sink="hook"} 0.0' in scrape_metrics(metrics_port)
        assert "CRITICAL" in daemon.log()
        assert daemon.log().count("ALERTS REACH NO ONE: every remote sink") == 1

        hook.fail_with = None  # the receiver is back: the next probe (1 s back-off) finds it
        await hook.wait_for(lambda p: p.get("event") == "resolved", within=15)
        await wait_until(
            lambda: all(row["delivered_at"] for row in _hook_rows(state)),
            10,
            "every held row delivered",
            daemon.log,
        )
        await asyncio.sleep(1.5)  # a duplicate would arrive within this time

        rows = _hook_rows(state)
        ids = [str(p["id"]) for p in hook.payloads if p.get("rule") == "margin_ratio"]
        assert len(ids) == len(set(ids))  # once
        assert ids == [row["notification_id"] for row in rows]  # every one, in order
        assert _margin(hook.payloads) == [
            ("firing", "warning"),
            ("firing", "critical"),
            ("resolved", "critical"),
        ]
        status = await _cli("status", "--config", str(config), "--format", "table")
        assert status.returncode == 0, status
        assert "Alert sinks" not in status.stdout
        await wait_until(
            lambda: 'portfolio_monitor_sink_up{sink="hook"} 1.0' in scrape_metrics(metrics_port),
            5,
            "the sink_up gauge back at 1",
            daemon.log,
        )
        assert await asyncio.to_thread(daemon.terminate) == 0
    finally:
        daemon.__exit__(None, None, None)


async def test_retry_sends_a_held_alert_at_once_and_the_expired_one_as_a_summary(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver
) -> None:
    # A 10 minute back-off: whatever arrives during the test was sent because of --retry.
    config = _config(tmp_path, sim, hook, retry="10m", max_age="8s")
    state = tmp_path / "state"
    daemon = DaemonProcess(config, tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        hook.fail_with = 410
        sim.set_price("BTC", WARNING_PRICE)
        await wait_until(lambda: len(_hook_rows(state)) == 1, 20, "the warning", daemon.log)
        await asyncio.sleep(8.5)  # the warning is now past the 8 s age limit
        sim.set_price("BTC", CRITICAL_PRICE)
        await wait_until(lambda: len(_hook_rows(state)) == 2, 20, "the critical", daemon.log)
        hook.fail_with = None
        await asyncio.sleep(0.5)  # letting time pass is the point: nothing is sent meanwhile
        assert hook.payloads == []  # the back-off holds them: no probe for 10 minutes

        retried = await _cli(
            "alerts", "--retry", "hook", "--config", str(config), "--format", "table"
        )
        assert retried.returncode == 0, retried
        assert "hook: retry requested; 2 alert(s) waiting" in retried.stderr
        await hook.wait_for(lambda p: p.get("event") == "firing", within=5)

        summary, *alerts = hook.payloads
        assert summary["rule"] == "undelivered"
        assert summary["title"] == "1 alerts older than 8s were not delivered"
        assert "main: margin ratio" in summary["message"]
        assert _margin(alerts) == [("firing", "critical")]
        warning, critical = _hook_rows(state)
        assert warning["dead"]
        assert "older than 8s when hook took alerts again; summarised in" in warning["last_error"]
        assert critical["delivered_at"] is not None

        unknown = await _cli("alerts", "--retry", "nope", "--config", str(config))
        assert unknown.returncode == 2
        assert "no sink 'nope' is configured" in unknown.stderr
        assert await asyncio.to_thread(daemon.terminate) == 0
    finally:
        daemon.__exit__(None, None, None)
