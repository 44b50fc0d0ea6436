"""`portfolio-monitor run` with klines: the account move in sigmas reaches the alert text (webhook),
MQTT state, Prometheus and `status`, with `move_in_sigma` enabled by one config section."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import Endpoints, MqttRecorder, scrape_metrics, write_config
from tests.support.daemon import DaemonProcess
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.mqtt]


async def test_the_account_move_in_sigmas_reaches_every_output(
    tmp_path: Path,
    sim: SimulatorServer,
    hook: WebhookReceiver,
    mosquitto: Mosquitto,
) -> None:
    keys = {name: (info.api_key, info.api_secret) for name, info in sim.accounts.items()}
    endpoints = Endpoints(sim.base_url, keys, mosquitto.port, hook.url)
    state = tmp_path / "state"
    metrics_port = free_port()
    config = write_config(tmp_path / "config.toml", state, endpoints, metrics_port=metrics_port)
    # 20x longs on a 1,500 USDT wallet: a move of about -2.9 % liquidates, about one daily sigma
    # of the simulator's klines (3 %): below 3 sigma, so the rule fires.
    with config.open("a") as file:
        file.write('[alerts.move_in_sigma]\nenabled = true\nhorizon = "daily"\nfor = "1s"\n')
    async with MqttRecorder(mosquitto).running() as mqtt:
        daemon = DaemonProcess(config, tmp_path)
        try:
            await asyncio.to_thread(daemon.start)
            payload = await hook.wait_for(
                lambda p: p.get("rule") == "move_in_sigma" and p.get("event") == "firing",
                within=20,
            )
            message = str(payload["message"])
            assert re.search(r"account move -\d\.\d+ % = \d\.\d \u03c3 daily", message), message
            assert payload["facts"]["horizon"] == "daily"
            await wait_until(
                lambda: (
                    (last := mqtt.last("portfolio_monitor/main/state")) is not None
                    and json.loads(last.payload).get("account_move_sigmas_daily") is not None
                ),
                10,
                "MQTT state with sigmas",
                daemon.log,
            )
            metrics = await asyncio.to_thread(scrape_metrics, metrics_port)
            assert (
                'portfolio_monitor_account_move_sigmas{account="main",horizon="daily"}' in metrics
            )
            # Klines once per symbol and interval, however many polls ran.
            kline_reads = [r for r in sim.request_log if r.path == "/fapi/v1/klines"]
            assert len(kline_reads) == 4
        finally:
            daemon.__exit__(None, None, None)
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["status", "--config", str(config), "--format", "json"]
    )
    row = json.loads(result.stdout)[0]
    assert row["account_move_sigmas"]["daily"] is not None
    assert row["account_move_sigmas"]["daily"] < 3
