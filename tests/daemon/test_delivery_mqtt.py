"""Alerts raised while the broker is down reach it once it is back: real mosquitto, real SQLite
outbox, the real sender and MQTT publisher."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from monitor.delivery import OutboxSender
from monitor.notify.mqtt.settings import MqttSettings
from monitor.notify.mqtt.transport import MqttPublisher
from monitor.retry import RetryPolicy
from monitor.storage.migrate import prepare_database
from monitor.storage.repository import SqlStore
from tests.daemon.outbox import outbox_rows
from tests.notify.factories import notification, quick_reconnect
from tests.notify.mqtt_client import relayed
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_until

# These senders run on the wall clock: alerts created now, not past the held-alert age limit.
NOW = datetime.now(UTC)

pytestmark = pytest.mark.mqtt

ALERT = "portfolio_monitor/main/alert"


async def _empty(store: SqlStore) -> bool:
    return await store.depth() == 0


async def _connect_then_lose_the_broker(mqtt: MqttPublisher, mosquitto: Mosquitto) -> None:
    async with asyncio.timeout(5):
        await mqtt.wait_connected()
    mosquitto.stop()
    await wait_until(lambda: not mqtt.connected, 5, "the disconnect")


async def test_alerts_queued_while_the_broker_is_down_arrive_after_it_returns(
    mosquitto: Mosquitto,
    tmp_path: Path,
) -> None:
    database = tmp_path / "monitor.db"
    store = await prepare_database(f"sqlite:///{database}")
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="pm-outbox")
    policy = RetryPolicy(initial=timedelta(seconds=0.2), maximum=timedelta(seconds=0.5))
    try:
        async with MqttPublisher(settings, reconnect=quick_reconnect(0.3)) as mqtt:
            await _connect_then_lose_the_broker(mqtt, mosquitto)

            await store.enqueue(
                [notification(id="n1", created_at=NOW), notification(id="n2", created_at=NOW)],
                ["mqtt"],
            )
            sender = OutboxSender(store, {"mqtt": mqtt}, policy, poll_interval=0.1)
            await sender.deliver_due()
            rows = outbox_rows(database)
            assert "not connected" in (rows[0].last_error or "")
            assert (rows[1].last_error or "").startswith("not tried: mqtt is failing")
            assert await store.depth() == 2

            mosquitto.start()
            runner: asyncio.Task[None] | None = None
            try:
                async with relayed(
                    mosquitto, [ALERT], until=lambda seen: len(seen) >= 2, timeout=15
                ) as seen:
                    runner = asyncio.create_task(sender.run())
                # The PUBACK may arrive after the subscriber has its copy.
                await wait_until(lambda: _empty(store), 5, "an empty outbox")
            finally:
                if runner is not None:
                    runner.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await runner
        assert [message.json()["id"] for message in seen] == ["n1", "n2"]
        assert not any(message.retain for message in seen)
        assert all(row.delivered for row in outbox_rows(database))
    finally:
        await store.close()


async def test_alerts_waiting_for_the_broker_go_out_when_it_reconnects(
    mosquitto: Mosquitto,
    tmp_path: Path,
) -> None:
    """The back-off grew while the broker was down; its return ends the wait at once."""
    database = tmp_path / "monitor.db"
    store = await prepare_database(f"sqlite:///{database}")
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="pm-recover")
    policy = RetryPolicy(initial=timedelta(seconds=60), maximum=timedelta(seconds=60))
    try:
        async with MqttPublisher(settings, reconnect=quick_reconnect(0.3)) as mqtt:
            await _connect_then_lose_the_broker(mqtt, mosquitto)
            await store.enqueue([notification(id="n1", created_at=NOW)], ["mqtt"])
            sender = OutboxSender(store, {"mqtt": mqtt}, policy, poll_interval=0.1)
            mqtt.add_connect_listener(partial(sender.sink_recovered, "mqtt"))  # as the daemon
            await sender.deliver_due()  # fails: the next try would be in 60 s
            runner = asyncio.create_task(sender.run())
            try:
                mosquitto.start()
                await wait_until(lambda: _empty(store), 10, "an empty outbox")
            finally:
                runner.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await runner
        assert all(row.delivered for row in outbox_rows(database))
    finally:
        await store.close()
