"""Private account streams over ccxt.pro: one per account, telling the daemon that something
changed on the account between REST fetches (a fill, a transfer, funding, a margin change).

Binance USDⓈ-M / COIN-M: the user-data stream (ccxt.pro's `watch_balance` and `watch_orders`:
a listenKey from `POST /fapi|dapi/v1/listenKey`, renewed here with a PUT every 30 minutes,
well inside the venue's 60; `ACCOUNT_UPDATE` and `ORDER_TRADE_UPDATE` events). Bybit:
the v5 private websocket (`watch_positions` and `watch_balance`: the `position` and `wallet`
topics after an `auth` op). The events carry no marks nor liquidation prices, so they only say
"refresh this account now"; what is read comes from the REST fetch.

A stream that fails (refused, closed, a lapsed listenKey) is reported down and reconnected with
back-off (never a busy loop); the account keeps its REST cadence meanwhile. A listenKey is a
credential: it is cut out of every error text this module passes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from monitor.domain.errors import MonitorError, RetryableError
from monitor.domain.model import Venue
from monitor.exchanges.errors import translate
from monitor.exchanges.stops import OrderWatch
from monitor.exchanges.streams import RECONNECT
from monitor.ports import AccountEventListener
from monitor.retry import RetryPolicy

log = logging.getLogger(__name__)

# ccxt.pro's per-venue watchers whose every resolution means "the account changed".
_WATCHES = {
    "binance": ("watch_balance", "watch_orders"),
    "bybit": ("watch_positions", "watch_balance"),
}
# ccxt's options so that no watcher fetches a REST snapshot first (the daemon's own REST fetch
# is what reads the account).
QUIET_OPTIONS: dict[str, Any] = {
    "watchBalance": {"fetchBalanceSnapshot": False},
    "watchPositions": {"fetchPositionsSnapshot": False},
}
_LISTEN_KEY = re.compile(r"(listenKey=|/ws/)[A-Za-z0-9_-]{20,}")
# How long a connection may take to open before the stream counts as down.
CONNECT_SECONDS = 10.0
# Binance drops a listenKey 60 minutes after its last POST/PUT. ccxt.pro schedules one PUT 20
# minutes after authenticating, but its re-scheduling looks for subscriptions in a dict view
# of its connection objects and finds none (ccxt 4.5.90), so a quiet account's key would lapse
# after 80 minutes: the stream renews it itself, every 30 minutes.
KEEPALIVE_SECONDS = 30 * 60.0


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every listenKey (a credential that reads the account) replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _LISTEN_KEY.sub(r"\1***", text)


class AccountEventStream:
    """The private stream of one account (an `AccountStream`).

    `new_exchange` makes a ccxt.pro instance holding the account's keys (its URLs already
    pointed at a local `base_url`), one per connection: ccxt schedules the listenKey keepalive
    on its instance, and a fresh one leaves no keepalive behind for a dropped key; `markets` returns an instance holding the venue's market list (shared
    with the REST clients, so the stream costs no market download). `order_watch` (Binance) is
    told when the stream is up, when it reports a change and when it drops, so that the
    account's client keeps its open orders only while nothing can have changed them.
    """

    def __init__(
        self,
        account: str,
        venue: Venue,
        new_exchange: Callable[[], Any],
        markets: Callable[[], Awaitable[Any]],
        *,
        reconnect: RetryPolicy = RECONNECT,
        connect_timeout: float = CONNECT_SECONDS,
        keepalive: float = KEEPALIVE_SECONDS,
        order_watch: OrderWatch | None = None,
    ) -> None:
        self._account = account
        self._venue = venue
        self._new_exchange = new_exchange
        self._exchange = new_exchange()
        self._markets = markets
        self._reconnect = reconnect
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._order_watch = order_watch

    @property
    def account(self) -> str:
        """The account this stream reports on."""
        return self._account

    async def close(self) -> None:
        """Close the websocket connection."""
        with contextlib.suppress(Exception):
            await self._exchange.close()

    async def run(self, listener: AccountEventListener) -> None:
        """Stream until cancelled, reporting events and health to `listener`."""
        failures = 0
        up = False

        def connected() -> None:
            nonlocal up, failures
            up, failures = True, 0
            listener.account_stream(self._account, True, "streaming")

        while True:
            try:
                await self._session(listener, connected)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is translated below
                error = exc if isinstance(exc, MonitorError) else translate(exc, self._where)
                failures += 1
                if up or failures == 1:
                    listener.account_stream(self._account, False, self._redact(str(error)))
                up = False
                await self._drop()
                await asyncio.sleep(self._reconnect.delay(failures).total_seconds())

    @property
    def _where(self) -> str:
        return f"{self._venue.value} account stream"

    async def _session(self, listener: AccountEventListener, connected: Callable[[], None]) -> None:
        """One connection: watch until a watcher fails (raises)."""
        source = await self._markets()
        if self._exchange.markets is not source.markets:
            self._exchange.set_markets_from_exchange(source)
        names = _WATCHES[self._venue.exchange]
        tasks = {asyncio.ensure_future(getattr(self._exchange, n)()): n for n in names}
        try:
            await self._until_connected(tasks)
            if self._order_watch is not None:
                self._order_watch.connected()
            connected()
            if self._venue.exchange == "binance":
                tasks[asyncio.ensure_future(self._keep_alive())] = "keepalive"
            while True:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    name = tasks.pop(task)
                    task.result()  # a failed watcher ends the session
                    if self._order_watch is not None:
                        # Before the listener: the fetch it starts must ask for orders again.
                        self._order_watch.changed()
                    listener.account_event(self._account, name.removeprefix("watch_"))
                    tasks[asyncio.ensure_future(getattr(self._exchange, name)())] = name
        finally:
            if self._order_watch is not None:
                # A session only ends by failing or being cancelled: the stream is down.
                self._order_watch.disconnected()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep_alive(self) -> None:
        """Renew the listenKey (PUT) until it fails: -1125 "This listenKey does not exist."
        ends the session, and the next one asks for a key again."""
        exchange = self._exchange
        renew = (
            exchange.fapiPrivatePutListenKey
            if self._venue is Venue.BINANCE_USDM
            else exchange.dapiPrivatePutListenKey
        )
        while True:
            await asyncio.sleep(self._keepalive)
            await renew()

    async def _until_connected(self, tasks: dict[asyncio.Future[Any], str]) -> None:
        """Wait for the websocket to open (a watcher failing first raises its error)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while not self._connected():
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            if failed:
                failed[0].result()
            if loop.time() > deadline:
                raise RetryableError(
                    f"{self._where}: not connected within {self._connect_timeout:g}s"
                )
            await asyncio.sleep(0.05)

    def _connected(self) -> bool:
        for url, client in list(self._exchange.clients.items()):
            if not url.startswith("ws"):
                continue  # ccxt's bookkeeping of listenKey requests, not a connection
            if not _resolved(getattr(client, "connected", None)):
                continue
            # Bybit: open is not enough, the `auth` op must have been accepted (ccxt keeps
            # that future resolved on the connection; a refusal removes it and fails the
            # watchers).
            if self._venue.exchange != "bybit" or _resolved(client.futures.get("authenticated")):
                return True
        return False

    async def _drop(self) -> None:
        """Close the connection; the next session starts on a fresh instance, which asks for
        a listenKey (the venue returns the active key, or a new one once it lapsed)."""
        with contextlib.suppress(Exception):
            await self._exchange.close()
        self._exchange.clients = {}
        self._exchange = self._new_exchange()

    def _redact(self, text: str) -> str:
        keys = [str(self._exchange.apiKey or ""), str(self._exchange.secret or "")]
        for kind in ("linear", "inverse"):
            bucket = self._exchange.options.get(kind)
            if isinstance(bucket, dict) and isinstance(bucket.get("listenKey"), str):
                keys.append(bucket["listenKey"])
        return redact(text, tuple(keys))


def _resolved(future: Any) -> bool:
    """Whether a ccxt future has completed without an error."""
    if future is None or not future.done() or future.cancelled():
        return False
    return future.exception() is None
