"""MqttPublisher against a real mosquitto: retained state and discovery, alert events, last will,
clean shutdown, broker restarts and Home Assistant's birth message."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.domain.errors import RetryableError
from monitor.errors import DeliveryError
from monitor.notify.mqtt.ha_discovery import SENSORS
from monitor.notify.mqtt.settings import MqttSettings
from monitor.notify.mqtt.transport import MqttPublisher
from tests.notify.factories import notification, quick_reconnect, snapshot
from tests.notify.mqtt_client import Seen, collect, latest, relayed
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_until

pytestmark = pytest.mark.mqtt

STATE = "portfolio_monitor/main/state"
AVAILABILITY = "portfolio_monitor/availability"
ALERT = "portfolio_monitor/main/alert"
RATIO_CONFIG = "homeassistant/sensor/portfolio_monitor_main_margin_ratio/config"
ALL = ["portfolio_monitor/#", "homeassistant/sensor/#"]


def _settings(broker: Mosquitto, **overrides: object) -> MqttSettings:
    return MqttSettings.model_validate(
        {"host": broker.host, "port": broker.port, "client_id": "pm-test", **overrides}
    )


@pytest.fixture(name="publisher")
async def _publisher(mosquitto: Mosquitto) -> AsyncIterator[MqttPublisher]:
    async with MqttPublisher(
        _settings(mosquitto), reconnect=quick_reconnect(0.5), birth_delay=0
    ) as publisher:
        async with asyncio.timeout(5):
            await publisher.wait_connected()
        yield publisher


def _has(*topics: str):  # type: ignore[no-untyped-def]
    return lambda seen: all(latest(seen, topic) is not None for topic in topics)


async def test_state_discovery_and_availability_are_retained(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    async with relayed(mosquitto, [STATE], until=_has(STATE)):  # queued last: all is out
        publisher.register_account("main", 10, asset="USDT", venue="binance-usdm")
        publisher.publish_state(snapshot(margin_ratio=2.5))

    # A subscriber arriving later (Home Assistant after a restart) gets everything retained.
    seen = await collect(mosquitto, ALL, quiet=0.5)
    state, availability, config = (latest(seen, t) for t in (STATE, AVAILABILITY, RATIO_CONFIG))
    assert state is not None
    assert state.retain
    document = state.json()
    assert document["margin_ratio"] == 2.5
    assert document["exchange_margin_ratio"] == 0.4
    assert document["equity"] == 1000.0
    assert document["account_liquidation_move"] == -0.077
    assert document["nearest_liquidation_symbol"] == "BTCUSDT"
    assert document["nearest_liquidation_price"] == 53534.0
    assert document["distance_to_liquidation"] == 0.077
    assert document["updated_at"] == "2025-11-21T09:00:00+00:00"
    assert availability is not None
    assert availability.retain
    assert availability.payload == b"online"
    assert config is not None
    assert config.retain
    payload = config.json()
    assert payload["default_entity_id"] == "sensor.portfolio_monitor_main_margin_ratio"
    assert "object_id" not in payload
    assert payload["expire_after"] == 30
    assert payload["state_topic"] == STATE
    assert payload["availability_topic"] == AVAILABILITY
    assert payload["device"]["identifiers"] == ["portfolio_monitor_main"]
    assert payload["origin"]["name"] == "portfolio-monitor"
    configs = {m.topic for m in seen if m.topic.startswith("homeassistant/")}
    assert len(configs) == len(SENSORS)


async def test_state_updates_replace_the_retained_value(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    async with relayed(mosquitto, [STATE], until=lambda seen: len(seen) == 2):
        publisher.register_account("main", 10)
        publisher.publish_state(snapshot(margin_ratio=2.5))
        publisher.publish_state(snapshot(margin_ratio=1.25))
    seen = await collect(mosquitto, [STATE], until=_has(STATE))
    state = latest(seen, STATE)
    assert state is not None
    assert state.retain
    assert state.json()["margin_ratio"] == 1.25


async def test_state_says_how_the_marks_arrive(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    async with relayed(mosquitto, [STATE], until=lambda seen: len(seen) == 2):
        publisher.register_account("main", 10)
        publisher.publish_state(snapshot(margin_ratio=2.5), "live")
        publisher.publish_state(
            snapshot(margin_ratio=2.4), "polling: binance-usdm mark stream down"
        )
    seen = await collect(mosquitto, [STATE], until=_has(STATE))
    state = latest(seen, STATE)
    assert state is not None
    assert state.json()["stream"] == "polling: binance-usdm mark stream down"
    assert state.json()["margin_ratio"] == 2.4


async def test_alert_events_are_not_retained(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    async with relayed(mosquitto, [ALERT], until=_has(ALERT)) as seen:
        await publisher.send(notification())
    alert = latest(seen, ALERT)
    assert alert is not None
    assert not alert.retain
    assert alert.json()["id"] == "main:margin_ratio:critical:firing:1763715600"
    assert alert.json()["severity"] == "critical"
    # A later subscriber gets nothing: events must not replay.
    assert await collect(mosquitto, [ALERT], timeout=1.0) == []


async def test_alert_while_broker_down_is_a_retryable_delivery_error(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    mosquitto.stop()
    await wait_until(lambda: not publisher.connected, 10, "the disconnect")
    with pytest.raises(DeliveryError) as caught:
        await publisher.send(notification())
    assert isinstance(caught.value, RetryableError)


async def test_everything_is_republished_after_a_broker_restart(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    async with relayed(mosquitto, [STATE], until=_has(STATE)):
        publisher.register_account("main", 10)
        publisher.publish_state(snapshot(margin_ratio=2.5))
    mosquitto.stop()  # no persistence: the broker comes back with no retained messages
    await wait_until(lambda: not publisher.connected, 10, "the disconnect")
    mosquitto.start()
    await wait_until(lambda: publisher.connected, 10, "the reconnect")
    seen = await collect(mosquitto, ALL, until=_has(STATE, AVAILABILITY, RATIO_CONFIG))
    assert latest(seen, AVAILABILITY).payload == b"online"  # type: ignore[union-attr]
    assert latest(seen, STATE).json()["margin_ratio"] == 2.5  # type: ignore[union-attr]
    assert latest(seen, RATIO_CONFIG).retain  # type: ignore[union-attr]


async def test_birth_message_republishes_discovery(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    import aiomqtt

    async with relayed(mosquitto, [RATIO_CONFIG], until=_has(RATIO_CONFIG)):
        publisher.register_account("main", 10)
    # The retained copy arrives first; then a second, live (not retained) copy.
    async with (
        relayed(
            mosquitto,
            [RATIO_CONFIG],
            until=lambda seen: any(m.topic == RATIO_CONFIG and not m.retain for m in seen),
        ) as seen,
        aiomqtt.Client(mosquitto.host, mosquitto.port) as home_assistant,
    ):
        await home_assistant.publish("homeassistant/status", b"online", qos=1)
    assert [m.retain for m in seen if m.topic == RATIO_CONFIG] == [True, False]


async def test_clean_shutdown_publishes_offline(mosquitto: Mosquitto) -> None:
    async with MqttPublisher(_settings(mosquitto)) as publisher:
        async with asyncio.timeout(5):
            await publisher.wait_connected()
    seen = await collect(mosquitto, [AVAILABILITY], until=_has(AVAILABILITY))
    assert latest(seen, AVAILABILITY).payload == b"offline"  # type: ignore[union-attr]


_DYING_CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from monitor.notify.mqtt.settings import MqttSettings
    from monitor.notify.mqtt.transport import MqttPublisher

    async def main() -> None:
        settings = MqttSettings(host="127.0.0.1", port=int(sys.argv[1]), client_id="pm-dying")
        async with MqttPublisher(settings) as publisher:
            await publisher.wait_connected()
            print("ready", flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_last_will_marks_the_daemon_offline_when_it_dies(
    mosquitto: Mosquitto,
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(  # noqa: ASYNC220 - a plain child process, not awaited
        [sys.executable, "-c", _DYING_CLIENT, str(mosquitto.port)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 15)
        assert line.strip() == b"ready"
        seen = await collect(mosquitto, [AVAILABILITY], until=_has(AVAILABILITY))
        assert latest(seen, AVAILABILITY).payload == b"online"  # type: ignore[union-attr]
        process.kill()  # no DISCONNECT packet: the broker must publish the will
        process.wait(5)
        seen = await collect(
            mosquitto,
            [AVAILABILITY],
            until=lambda seen: any(m.payload == b"offline" for m in seen),
        )
        offline = latest(seen, AVAILABILITY)
        assert offline is not None
        assert offline.payload == b"offline"
    finally:
        process.kill()
        process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


async def test_state_bursts_never_block_and_the_newest_state_wins(
    mosquitto: Mosquitto,
) -> None:
    settings = _settings(mosquitto, queue_size=10)

    def newest(seen: list[Seen]) -> bool:
        state = latest(seen, STATE)
        return state is not None and state.json()["margin_ratio"] == 1.999

    async with MqttPublisher(settings) as publisher:
        async with asyncio.timeout(5):
            await publisher.wait_connected()
        async with relayed(mosquitto, [STATE], until=newest):
            for step in range(1000):  # no await: the sender gets no chance to drain in between
                publisher.publish_state(snapshot(margin_ratio=1.0 + step / 1000))
        assert publisher.dropped == 990
        seen = await collect(mosquitto, [STATE], until=_has(STATE))
    assert latest(seen, STATE).json()["margin_ratio"] == 1.999  # type: ignore[union-attr]


async def test_an_account_removed_while_disconnected_leaves_no_ghost_entities(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    import aiomqtt

    async with relayed(mosquitto, [STATE], until=_has(STATE)):  # queued last: all is out
        publisher.register_account("main", 10)
        publisher.register_account("kept", 10)
        publisher.publish_state(snapshot(margin_ratio=2.5))
    # Another client with our client id takes the session over: we are disconnected while the
    # broker (and every retained message) stays.
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="pm-test"):
        await wait_until(lambda: not publisher.connected, 10, "the disconnect")
        publisher.remove_account("main")
    # Connected means republished: the clearing of main's topics was acknowledged by then.
    await wait_until(lambda: publisher.connected, 10, "the reconnect")
    seen = await collect(mosquitto, ALL, quiet=0.5)
    retained = {m.topic for m in seen if m.retain and m.payload}
    assert STATE not in retained
    assert RATIO_CONFIG not in retained
    assert "homeassistant/sensor/portfolio_monitor_kept_margin_ratio/config" in retained


async def test_an_account_registered_during_the_connect_republish_is_announced(
    mosquitto: Mosquitto,
) -> None:
    class RegisteredMidway(MqttPublisher):
        """The daemon registers its accounts between database writes; one may land while
        the publisher is republishing what it remembered at connect time."""

        def _retained(self):  # type: ignore[no-untyped-def]
            remembered = super()._retained()
            self.register_account("main", 10)
            return remembered

    main_configs = [f"homeassistant/sensor/portfolio_monitor_main_{s.key}/config" for s in SENSORS]
    async with RegisteredMidway(_settings(mosquitto)) as publisher:
        async with asyncio.timeout(5):
            await publisher.wait_connected()
        seen = await collect(mosquitto, main_configs, until=_has(*main_configs))
    # Every sensor of the account is announced, retained, as a real config (not a deletion).
    for topic in main_configs:
        config = latest(seen, topic)
        assert config is not None, topic
        assert config.retain
        assert config.json()["device"]["identifiers"] == ["portfolio_monitor_main"]


async def test_birth_message_republishes_every_account_even_past_the_queue_size(
    mosquitto: Mosquitto,
) -> None:
    import aiomqtt

    settings = _settings(mosquitto, queue_size=4)  # fewer than one account's six configs
    async with MqttPublisher(settings, birth_delay=0) as publisher:
        async with asyncio.timeout(5):
            await publisher.wait_connected()

        def live(seen: list[Seen]) -> list[str]:
            return [m.topic for m in seen if not m.retain]

        # The queue keeps the newest four: the last one registered is out when it is relayed.
        last = f"homeassistant/sensor/portfolio_monitor_hedge_{SENSORS[-1].key}/config"
        async with relayed(mosquitto, [last], until=_has(last)):
            for account in ("main", "alt", "hedge"):
                publisher.register_account(account, 10)
        async with (
            relayed(
                mosquitto, ["homeassistant/sensor/#"], until=lambda s: len(live(s)) >= 18
            ) as seen,
            aiomqtt.Client(mosquitto.host, mosquitto.port) as home_assistant,
        ):
            await home_assistant.publish("homeassistant/status", b"online", qos=1)
    assert len(set(live(seen))) == 18


async def test_a_pooled_account_equity_sensor_is_in_usd(
    mosquitto: Mosquitto,
    publisher: MqttPublisher,
) -> None:
    # Configured with USDT, but the venue pools every coin in USD: the sensor's unit follows.
    pooled = snapshot(margin_ratio=2.5)
    async with relayed(mosquitto, [STATE], until=_has(STATE)):  # queued after the new configs
        publisher.register_account("main", 10, asset="USDT", venue="bybit-linear")
        publisher.publish_state(replace(pooled, state=replace(pooled.state, asset="USD")))
    seen = await collect(mosquitto, ALL, quiet=0.5)
    config = latest(seen, "homeassistant/sensor/portfolio_monitor_main_equity/config")
    assert config is not None
    assert config.json()["unit_of_measurement"] == "USD"
