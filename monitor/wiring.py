"""Builds and closes the adapters the daemon runs on: store, exchange clients, sinks, MQTT, outbox.

Kept apart from `daemon.py` (life cycle, signals, systemd) so each reads on its own. Order
matters at both ends: the store opens first and closes last; on shutdown the outbox is flushed
while the sinks and the broker connection still exist, then MQTT says `offline`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from monitor.config import AccountSettings, Settings
from monitor.config.alerts import account_rules
from monitor.delivery import DELIVERY_RETRY, OutboxSender
from monitor.domain.alerts import AlertRules
from monitor.domain.errors import MonitorError
from monitor.domain.units import format_duration
from monitor.exchanges import ExchangeHub
from monitor.notify.http.transport import HttpTransport
from monitor.notify.mqtt.transport import MqttPublisher
from monitor.notify.sinks import build_sinks
from monitor.outage import StorageOutage
from monitor.ports import ExchangeClient, Sink, SystemClock
from monitor.service import CycleObserver, CycleReport
from monitor.storage.engine import sqlite_path
from monitor.storage.leases import LeaseBoard, LeaseTerms
from monitor.storage.lock import writer_lock
from monitor.storage.migrate import prepare_database
from monitor.storage.repository import SqlStore
from monitor.storage.retention import RetentionPolicy

log = logging.getLogger(__name__)


class _MqttStateObserver:
    def __init__(self, publisher: MqttPublisher) -> None:
        self._publisher = publisher

    def cycle_finished(self, report: CycleReport) -> None:
        if report.snapshot is not None:
            self._publisher.publish_state(report.snapshot, report.stream)


class _WakeSender:
    def __init__(self, sender: OutboxSender) -> None:
        self._sender = sender

    def cycle_finished(self, report: CycleReport) -> None:
        if report.notifications:
            self._sender.wake()


@dataclass
class Adapters:
    """Everything outside the domain that one daemon uses."""

    store: SqlStore
    hub: ExchangeHub
    sinks: dict[str, Sink]
    sender: OutboxSender
    mqtt: MqttPublisher | None
    # Whether the database takes writes; the poll service and the sender report to it.
    outage: StorageOutage
    # PostgreSQL: this daemon's account leases (several daemons may share the database).
    leases: LeaseBoard | None = None

    @property
    def sink_names(self) -> list[str]:
        """Names of the sinks every notification is queued for."""
        return list(self.sinks)

    def observers(self) -> list[CycleObserver]:
        """Cycle observers that publish state (MQTT) and start delivery without delay."""
        observers: list[CycleObserver] = [_WakeSender(self.sender)]
        if self.mqtt is not None:
            observers.append(_MqttStateObserver(self.mqtt))
        return observers

    def client_for(self, name: str, account: AccountSettings) -> ExchangeClient:
        """A new exchange client for one configured account."""
        return self.hub.client_for(name, account)

    def venue_key(self, account: AccountSettings) -> str:
        """The venue and address an account talks to (the scope of a venue-wide pause)."""
        return self.hub.venue_key(account)

    async def close_client(self, name: str, client: ExchangeClient) -> None:
        """Close one account's client (account removed or changed by a reload)."""
        try:
            await client.close()
        except Exception:
            log.exception("account=%s closing its exchange client failed", name)

    def rules_for(self, settings: Settings, name: str) -> AlertRules:
        """The alert rules of one account: defaults merged with its overrides."""
        return account_rules(settings.alerts, settings.accounts[name].alerts, name)

    async def register_account(self, name: str, account: AccountSettings) -> None:
        """Record the account (its poll interval lets `status` judge staleness) and announce it
        over MQTT (Home Assistant discovery, expiry)."""
        if self.leases is None:
            # With leases every configured account was recorded at start (or reload): a takeover
            # of many accounts then starts them without a write each.
            await self.record_account(name, account)
        if self.mqtt is not None:
            self.mqtt.register_account(
                name, account.poll_interval, asset=account.asset, venue=account.venue.value
            )

    async def record_account(self, name: str, account: AccountSettings) -> None:
        """Record the account in the database only (with several daemons on PostgreSQL: so
        that it can be leased, whichever daemon will poll it)."""
        await self.store.register_account(
            name,
            venue=account.venue.value,
            asset=account.asset,
            poll_interval=account.poll_interval.total_seconds(),
            now=datetime.now(UTC),
        )

    def unregister_account(self, name: str) -> None:
        """An account left the configuration: remove its Home Assistant entities."""
        if self.mqtt is not None:
            self.mqtt.remove_account(name)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Adapters]:
        """Open everything; on exit flush the outbox, publish MQTT offline and close it all."""
        database = settings.database
        file = sqlite_path(settings.database_url())
        # Taken before the schema is touched: a second daemon must not even migrate the file.
        with writer_lock(file) if file is not None else contextlib.nullcontext():
            store = await prepare_database(
                settings.database_url(),
                database.auto_migrate,
                retention_policy=RetentionPolicy(
                    raw=database.retention_raw,
                    minute=database.retention_minute,
                    hour=database.retention_hour,
                ),
            )
            leases: LeaseBoard | None = None
            if not store.is_sqlite:
                leases = await _join(settings, store)
            async with cls._opened(settings, store, leases) as adapters:
                yield adapters

    @classmethod
    @contextlib.asynccontextmanager
    async def _opened(
        cls, settings: Settings, store: SqlStore, leases: LeaseBoard | None
    ) -> AsyncIterator[Adapters]:
        try:
            async with contextlib.AsyncExitStack() as stack:
                hub = ExchangeHub(volatility=True)
                stack.push_async_callback(hub.aclose)
                http = await stack.enter_async_context(HttpTransport())
                mqtt: MqttPublisher | None = None
                if settings.notify.mqtt is not None:
                    mqtt = await stack.enter_async_context(MqttPublisher(settings.notify.mqtt))
                sinks = build_sinks(settings.notify, http, mqtt)
                delivery = settings.notify.delivery
                outage = StorageOutage(SystemClock())
                # The probe's first step: a real write, so recovery is not declared on reads.
                outage.on_recovery(store.check_writable)
                outage.free_space = store.free_space
                sender = OutboxSender(
                    store,
                    sinks,
                    replace(
                        DELIVERY_RETRY, initial=delivery.retry_initial, maximum=delivery.retry_max
                    ),
                    max_age=delivery.max_age,
                    outage=outage,
                )
                if mqtt is not None and mqtt.name in sinks:
                    # Alerts that waited for the broker go out as soon as it is back.
                    mqtt.add_connect_listener(partial(sender.sink_recovered, mqtt.name))
                adapters = cls(store, hub, sinks, sender, mqtt, outage, leases)
                sending = asyncio.create_task(sender.run(), name="outbox-sender")
                # The heartbeat lives as long as the sender: the outbox rows it claimed are
                # taken by another daemon only once this one stopped sending them.
                beating = (
                    None
                    if leases is None
                    else asyncio.create_task(_keep_beating(leases), name="heartbeat")
                )
                try:
                    yield adapters
                finally:
                    await sender.flush(delivery.flush_timeout.total_seconds())
                    sending.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sending
                    if beating is not None and leases is not None:
                        beating.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await beating
                        await _depart(leases)
                    await outage.close()
        finally:
            await store.close()


async def _keep_beating(board: LeaseBoard) -> None:
    """Renew the heartbeat every `renew_every` until cancelled (after the sender stopped), also
    while the daemon shuts down and no lease round runs any more."""
    every = board.terms.renew_every.total_seconds()
    while True:
        await asyncio.sleep(every)
        try:
            await board.beat()
        except MonitorError as exc:
            log.warning("renewing this daemon's heartbeat failed: %s", exc)


async def _depart(board: LeaseBoard) -> None:
    try:
        await board.depart()
    except MonitorError as exc:
        log.warning("removing this daemon's heartbeat failed (%s); it expires by itself", exc)


async def _join(settings: Settings, store: SqlStore) -> LeaseBoard:
    """Join the daemons sharing this PostgreSQL database under this daemon's name; from now on
    its cycles are stored, and its outbox rows claimed, only under the leases it holds."""
    name = settings.database.daemon_name or f"{socket.gethostname()}:{os.getpid()}"
    try:
        board = LeaseBoard(store.engine, name, LeaseTerms(settings.database.takeover))
        await board.join(socket.gethostname(), os.getpid())
    except BaseException:
        await store.close()
        raise
    store.lease_holder = name
    store.claim_grace = board.terms.ttl
    log.info(
        "daemon %s: polls the accounts it holds leases on; takeover within %s",
        name,
        format_duration(settings.database.takeover),
    )
    return board
