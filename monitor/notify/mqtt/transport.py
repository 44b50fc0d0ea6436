"""MQTT: retained per-account state, Home Assistant discovery, the daemon's availability with a
last will, and alert events (this module is also the "mqtt" outbox sink). All aiomqtt use lives here.

The connection runs in a background task that reconnects with exponential back-off. Publishing
state never blocks the poll cycle: it goes through a bounded queue that drops the oldest entry
when the broker is slow. Everything retained is rebuilt from memory on every (re)connect and on
Home Assistant's birth message, so a broker restart (which may lose retained messages) heals.
Alerts are different: `send()` publishes with QoS 1 and returns only when the broker acknowledged,
so the outbox keeps an alert until it really reached the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from types import TracebackType
from typing import Any

import aiomqtt

from monitor import __version__
from monitor.domain.model import Snapshot
from monitor.domain.notification import Notification
from monitor.errors import ConfigError, SinkUnavailable
from monitor.notify.base import payload
from monitor.notify.mqtt.ha_discovery import (
    alert_topic,
    availability_topic,
    discovery_configs,
    state_document,
    state_topic,
)
from monitor.notify.mqtt.settings import MqttSettings
from monitor.retry import RetryPolicy

# Log lines name their logger: the sink's package, as for every other sink module.
log = logging.getLogger("monitor.notify.mqtt")

ONLINE = b"online"
OFFLINE = b"offline"
# Topic level for notifications about the monitor itself (no account): .../_monitor/alert
MONITOR_TOPIC = "_monitor"
PUBLISH_TIMEOUT = 10.0
# Shutdown must not hang on a dead broker: systemd's stop timeout is waiting.
OFFLINE_TIMEOUT = 3.0
# A broker that went away is tried again after 1 s, doubling up to a minute.
RECONNECT = RetryPolicy(initial=timedelta(seconds=1), maximum=timedelta(seconds=60))


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class _Account:
    poll_interval: float
    asset: str
    venue: str | None


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for the broker connection (CA file, client certificate), or None."""
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        if settings.client_cert is not None:
            context.load_cert_chain(
                str(settings.client_cert),
                str(settings.client_key) if settings.client_key else None,
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"notify.mqtt: cannot load TLS files: {exc}") from None
    return context


# Queued to wake the drain task without a message of its own (see `_republish`).
_WAKE = _Message("", b"", 0, False)


class _Stopped(Exception):
    """Raised inside the connection's task group to leave it on a clean shutdown."""


class MqttPublisher:
    """The daemon's MQTT connection. Use as `async with MqttPublisher(settings) as mqtt:`.

    `register_account()` announces an account to Home Assistant, `publish_state()` updates its
    retained state (never blocks), `send()` delivers an alert event (outbox sink "mqtt").
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        name: str = "mqtt",
        reconnect: RetryPolicy = RECONNECT,
        birth_delay: float = 2.0,
        availability: bool = True,
    ) -> None:
        """`availability=False` is for a short-lived second client next to the daemon (such as
        `test-notify`): its own client id (the same id would throw the daemon off the broker),
        no last will and no "online"/"offline", which would mark the running daemon offline."""
        self._settings = settings
        self._availability = availability
        self._name = name
        self._reconnect = reconnect
        self._birth_delay = birth_delay
        self._tls = tls_context(settings)
        self._identifier = settings.client_id or f"portfolio-monitor-{socket.gethostname()}"
        if not availability:
            self._identifier += f"-{os.getpid()}"
        self._prefix = settings.topic_prefix
        self._accounts: dict[str, _Account] = {}
        self._states: dict[str, bytes] = {}
        # Retained topics of removed accounts: cleared again on every connect, because a removal
        # made while the broker was away (or still queued when it went) would otherwise leave
        # ghost entities in Home Assistant.
        self._cleared: dict[str, None] = {}
        self._queue: asyncio.Queue[_Message | None] = asyncio.Queue(maxsize=settings.queue_size)
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        # True from the start of the connect-time republish: what arrives meanwhile is queued
        # behind it instead of being dropped (memory was already read for the republish).
        self._accepting = False
        # Home Assistant asked for discovery again (birth message); the drain task answers.
        self._republish = False
        # Set after every connection attempt, failed or not; `_refused` says why the last one failed.
        self._attempted = asyncio.Event()
        self._refused: str | None = None
        self._stopping = asyncio.Event()
        self._connect_listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    @property
    def name(self) -> str:
        """The outbox sink name ("mqtt")."""
        return self._name

    @property
    def connected(self) -> bool:
        """True while a broker connection is up."""
        return self._connected.is_set()

    @property
    def availability_topic(self) -> str:
        """The daemon's retained "online"/"offline" topic (the last will's topic)."""
        return availability_topic(self._prefix)

    async def wait_connected(self) -> None:
        """Wait until connected and everything retained is republished."""
        await self._connected.wait()

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every (re)connect, once everything retained is republished
        (the daemon uses it to deliver the alerts that waited for the broker at once)."""
        self._connect_listeners.append(listener)

    async def wait_attempted(self) -> None:
        """Wait until the first connection attempt succeeded or failed (`send()` then says why)."""
        await self._attempted.wait()

    # --- what the daemon calls -------------------------------------------------------------

    def register_account(
        self,
        account: str,
        poll_interval: float | timedelta,
        *,
        asset: str = "USDT",
        venue: str | None = None,
    ) -> None:
        """Announce an account's sensors to Home Assistant (now if connected, else on connect)."""
        seconds = (
            poll_interval.total_seconds()
            if isinstance(poll_interval, timedelta)
            else float(poll_interval)
        )
        self._accounts[account] = _Account(seconds, asset, venue)
        for message in self._discovery(account):
            self._cleared.pop(message.topic, None)
            self._put(message)
        self._cleared.pop(state_topic(self._prefix, account), None)

    def remove_account(self, account: str) -> None:
        """Forget an account: its HA entities and retained state are deleted (empty payloads)."""
        messages = self._discovery(account)
        self._accounts.pop(account, None)
        self._states.pop(account, None)
        for topic in [message.topic for message in messages] + [state_topic(self._prefix, account)]:
            self._cleared[topic] = None
            self._put(_Message(topic, b"", 1, True))

    def publish_state(self, snapshot: Snapshot, stream: str | None = None) -> None:
        """Update the account's retained state; returns at once (queued, oldest dropped if full).
        `stream` says how its marks arrive ("live", "polling: ..."), when mark streams are on."""
        details = self._accounts.get(snapshot.account)
        if details is not None and details.asset != snapshot.state.asset:
            # A pooled account is valued in USD, not in the coin its configuration names: the
            # equity sensor's unit follows what the venue reports.
            self._accounts[snapshot.account] = replace(details, asset=snapshot.state.asset)
            for message in self._discovery(snapshot.account):
                self._put(message)
        document = state_document(snapshot)
        if stream is not None:
            document["stream"] = stream
        body = _json(document)
        self._states[snapshot.account] = body
        self._put(_Message(state_topic(self._prefix, snapshot.account), body, 1, True))

    async def send(self, notification: Notification) -> None:
        """Publish one alert event (QoS 1, not retained); returns once the broker acknowledged it."""
        client = self._client
        if client is None or not self._connected.is_set():
            reason = f" ({self._refused})" if self._refused else ""
            raise SinkUnavailable(
                f"{self._name}: not connected to "
                f"{self._settings.host}:{self._settings.port}{reason}"
            )
        topic = alert_topic(self._prefix, notification.account or MONITOR_TOPIC)
        try:
            await client.publish(
                topic, _json(payload(notification)), qos=1, retain=False, timeout=PUBLISH_TIMEOUT
            )
        except aiomqtt.MqttError as exc:
            raise SinkUnavailable(f"{self._name}: publish failed ({exc})") from None

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> MqttPublisher:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Publish "offline" (a clean disconnect does not fire the last will), then disconnect."""
        client = self._client
        if client is not None and self._connected.is_set() and self._availability:
            try:
                await client.publish(
                    self.availability_topic, OFFLINE, qos=1, retain=True, timeout=OFFLINE_TIMEOUT
                )
            except aiomqtt.MqttError as exc:
                log.warning("MQTT: could not publish offline on shutdown: %s", exc)
        # Stop by a sentinel, not by cancellation: Python 3.11's asyncio.wait_for (inside
        # aiomqtt's publish) can swallow a cancellation that races with a PUBACK.
        self._force_put(None)
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task}, timeout=OFFLINE_TIMEOUT)
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.warning("MQTT: connection task ended with %r", task.exception())

    # --- internals ---------------------------------------------------------------------------

    def _discovery(self, account: str) -> list[_Message]:
        details = self._accounts.get(account)
        if details is None or not self._settings.discovery:
            return []
        return [
            _Message(topic, _json(config), 1, True)
            for topic, config in discovery_configs(
                account=account,
                poll_interval=details.poll_interval,
                topic_prefix=self._prefix,
                discovery_prefix=self._settings.discovery_prefix,
                version=__version__,
                asset=details.asset,
                venue=details.venue,
            )
        ]

    def _retained(self) -> list[_Message]:
        """Everything a fresh broker (or a restarted Home Assistant) needs."""
        messages = self._online()
        messages.extend(_Message(topic, b"", 1, True) for topic in self._cleared)
        for account in self._accounts:
            messages.extend(self._discovery(account))
        messages.extend(
            _Message(state_topic(self._prefix, account), body, 1, True)
            for account, body in self._states.items()
        )
        return messages

    def _put(self, message: _Message) -> None:
        if self._accepting:
            self._force_put(message)
        # Otherwise it is republished from memory on connect.

    def _force_put(self, message: _Message | None) -> None:
        while True:
            try:
                self._queue.put_nowait(message)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self.dropped += 1

    def _make_client(self) -> aiomqtt.Client:
        settings = self._settings
        return aiomqtt.Client(
            settings.host,
            settings.port,
            identifier=self._identifier,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            will=aiomqtt.Will(self.availability_topic, OFFLINE, qos=1, retain=True)
            if self._availability
            else None,
            keepalive=max(5, int(settings.keepalive.total_seconds())),
            tls_context=self._tls,
            timeout=PUBLISH_TIMEOUT,
            logger=logging.getLogger("monitor.notify.aiomqtt"),
        )

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            client = self._make_client()
            try:
                async with client:
                    self._client = client
                    await self._on_connect(client)
                    log.info("MQTT: connected to %s:%s", self._settings.host, self._settings.port)
                    failures = 0
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._drain(client))
                        group.create_task(self._listen(client))
                        await self._stopping.wait()
                        raise _Stopped
            except* _Stopped:
                pass  # the loop condition ends it
            except* aiomqtt.MqttError as errors:
                failures += 1
                self._refused = "; ".join(str(error) for error in errors.exceptions)
                self._attempted.set()
                log.warning(
                    "MQTT: %s:%s unavailable (%s); retrying in %.1fs",
                    self._settings.host,
                    self._settings.port,
                    self._refused,
                    self._reconnect.delay(failures).total_seconds(),
                )
            finally:
                self._accepting = False
                self._connected.clear()
                self._client = None
            if self._stopping.is_set():
                return
            await asyncio.sleep(self._reconnect.delay(max(failures, 1)).total_seconds())

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        # Whatever waited in the queue is older than what memory holds: replace it.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._republish = False  # everything is republished just below
        self._accepting = True
        if self._settings.discovery:
            await client.subscribe(f"{self._settings.discovery_prefix}/status", qos=1)
        for message in self._retained():
            await client.publish(
                message.topic, message.payload, qos=message.qos, retain=message.retain
            )
        self._refused = None
        self._connected.set()
        self._attempted.set()
        for listener in self._connect_listeners:
            try:
                listener()
            except Exception:
                # Never let a listener end the connection task for good.
                log.exception("MQTT: a connect listener failed")

    async def _drain(self, client: aiomqtt.Client) -> None:
        # Every publish of the connection's background work happens here, so that stopping
        # (by the None sentinel) never has to cancel a task inside aiomqtt's publish.
        while True:
            message = await self._queue.get()
            if message is None:
                return
            if self._republish:
                self._republish = False
                for item in self._discovery_all():
                    await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            if message is not _WAKE:
                await client.publish(
                    message.topic, message.payload, qos=message.qos, retain=message.retain
                )

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if message.payload == ONLINE:
                # Home Assistant restarted: it asks for discovery again. The random delay spreads
                # the load when many publishers answer at once (HA's advice).
                await asyncio.sleep(random.uniform(0, self._birth_delay))
                # Not queued message by message: the queue drops its oldest entries when full,
                # and six configs per account overflow it (1,000 entries) from about 170
                # accounts on. The drain task publishes them all from memory when it wakes.
                self._republish = True
                self._force_put(_WAKE)

    def _online(self) -> list[_Message]:
        return [_Message(self.availability_topic, ONLINE, 1, True)] if self._availability else []

    def _discovery_all(self) -> list[_Message]:
        messages = self._online()
        for account in self._accounts:
            messages.extend(self._discovery(account))
        return messages
