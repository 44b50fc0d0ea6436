"""The factory the daemon and the CLI use: one ccxt instance per API key, market lists shared per
venue and address (and Binance's request throttle, whose weight limit is per IP), ban windows
shared by every account that hits the same host, one HTTP session per event loop for all."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import ccxt.pro

from monitor.config.accounts import AccountSettings
from monitor.domain.errors import ExchangeUnavailable, MonitorError
from monitor.domain.model import Venue
from monitor.exchanges.account_events import QUIET_OPTIONS, AccountEventStream
from monitor.exchanges.base import CCXT_CLASSES, VenueClient
from monitor.exchanges.binance import BinanceClient
from monitor.exchanges.bybit import BybitClient
from monitor.exchanges.descriptions import SharedDescriptions
from monitor.exchanges.klines import KLINE_DEADLINE_SECONDS, KlineBook
from monitor.exchanges.pacing import Pacer, PacerChain, SharedSessions
from monitor.exchanges.probe import VENUE_LIMITS
from monitor.exchanges.resilience import FETCH_RETRY, BanBoard, call
from monitor.exchanges.stops import OrderWatch
from monitor.exchanges.streams import VenueMarkStream
from monitor.exchanges.urls import rewrite_api_urls, rewrite_ws_urls
from monitor.retry import RetryPolicy

# ccxt.pro's classes per venue: the public mark streams.
_PRO_CLASSES: dict[Venue, Any] = {
    Venue.BINANCE_USDM: ccxt.pro.binanceusdm,
    Venue.BINANCE_COINM: ccxt.pro.binancecoinm,
    Venue.BYBIT_LINEAR: ccxt.pro.bybit,
    Venue.BYBIT_INVERSE: ccxt.pro.bybit,
}


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """Where a ccxt class sends its requests: one market list, throttle and ban window each."""

    ccxt_id: str
    base_url: str | None
    testnet: bool

    @property
    def key(self) -> str:
        return f"{self.ccxt_id}@{self.base_url or ('testnet' if self.testnet else 'production')}"


_MIN_FORCED_RELOAD = 60.0


class _Markets:
    """The venue's market list, loaded by a key-less instance and shared by reference; re-read
    every `refresh` seconds, or at once when an account meets a symbol it does not list."""

    def __init__(
        self, exchange: Any, endpoint: _Endpoint, refresh: float, hub: ExchangeHub
    ) -> None:
        self.exchange = exchange
        self._endpoint = endpoint
        self._refresh = refresh
        self._hub = hub
        self._loaded_at = -float("inf")
        self._lock = asyncio.Lock()

    async def get(self, *, force: bool = False) -> Any:
        """The key-less instance holding the current market list."""
        async with self._lock:
            age = time.monotonic() - self._loaded_at
            # A symbol the venue lists nowhere must not make every poll re-read the market list.
            forced = force and age >= _MIN_FORCED_RELOAD
            if forced or age >= self._refresh or not self.exchange.markets:
                try:
                    await self._load()
                except MonitorError:
                    # A failed periodic re-read keeps the list we have; only a missing or
                    # explicitly stale list makes the fetch fail.
                    if forced or not self.exchange.markets:
                        raise
                self._loaded_at = time.monotonic()
        return self.exchange

    async def _load(self) -> None:
        exchange = self.exchange

        async def load() -> Any:
            markets = await exchange.load_markets(reload=True)
            # ccxt parses a truncated or non-JSON body into an empty market list.
            if not markets:
                raise ExchangeUnavailable(
                    f"{self._endpoint.ccxt_id}: empty or malformed market list"
                )
            return markets

        await call(
            load,
            where=f"{self._endpoint.ccxt_id}: markets",
            ban_key=self._endpoint.key,
            bans=self._hub.bans,
            policy=self._hub.retry,
            resync_clock=_no_resync,
        )


class ExchangeHub:
    """Builds the `ExchangeClient` of each configured account and owns what they share.

    `retry` is the per-fetch retry budget, `timeout` the per-request timeout in seconds,
    `tier_refresh` how often bracket / risk-limit tables (and market lists) are re-read;
    `volatility` reads each position's symbol's public klines (hourly, shared per venue and
    address) for the accounts whose `volatility` setting is on (the composition roots turn it
    on), so that their results carry distances in sigmas.
    `share_session` False gives every instance ccxt's own HTTP session and its own copy of
    the venue's description, ccxt as it comes (benchmarks compare).
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        tier_refresh: float = 3600.0,
        rate_limit: bool = True,
        volatility: bool = False,
        share_session: bool = True,
    ) -> None:
        self.retry = retry or FETCH_RETRY
        self.bans = BanBoard()
        self._timeout = timeout
        self._tier_refresh = tier_refresh
        self._rate_limit = rate_limit
        self._markets: dict[str, _Markets] = {}
        self._instances: dict[str, tuple[Any, int]] = {}
        self._volatility = volatility
        self._klines: dict[str, KlineBook] = {}
        self._sessions = SharedSessions() if share_session else None
        self._descriptions = SharedDescriptions() if share_session else None
        self._address_pacers: dict[str, Pacer] = {}
        # Per account name: what its private stream says of its orders, read by its client.
        self._order_watches: dict[str, OrderWatch] = {}

    def venue_key(self, settings: AccountSettings) -> str:
        """The venue and address an account's requests go to (`binanceusdm@production`): the
        scope of a ban window, shared by every account with the same key."""
        return _Endpoint(_ccxt_id(settings.venue), settings.base_url, settings.testnet).key

    def client_for(self, name: str, settings: AccountSettings) -> VenueClient:
        """A client for the account `name`; no network traffic until its first fetch. Entries
        with the same key on one venue (Bybit USDT and USDC pools) share one ccxt instance."""
        endpoint = _Endpoint(_ccxt_id(settings.venue), settings.base_url, settings.testnet)
        shared = self._shared(endpoint, settings.venue)
        api_key = settings.api_key.get_secret_value()
        api_secret = settings.api_secret.get_secret_value()
        # The credentials never become a dict key that could end up in a repr or a log. The
        # secret is part of the identity: a corrected secret (reload) must not reuse the
        # instance that signs with the old one.
        credentials = f"{api_key}\0{api_secret}".encode()
        key = f"{endpoint.key}|{hashlib.sha256(credentials).hexdigest()}"
        if key in self._instances:
            exchange, users = self._instances[key]
        else:
            exchange, users = (
                self._instance(
                    settings.venue,
                    endpoint,
                    {"apiKey": api_key, "secret": api_secret},
                ),
                0,
            )
            if settings.venue.exchange == "binance":
                # Binance counts request weight per IP across every key; Bybit limits private
                # endpoints per account (UID), so there each key keeps ccxt's own bucket.
                exchange.throttler = shared.exchange.throttler
            else:
                # Bybit also caps all requests from one IP (600 per 5 s).
                exchange.throttler = PacerChain(exchange.throttler, self._address_pacer(endpoint))
        self._instances[key] = (exchange, users + 1)
        extra: dict[str, Any] = {}
        if settings.venue.exchange == "binance":
            extra["order_watch"] = self.order_watch(name)
        client_cls = BybitClient if settings.venue.exchange == "bybit" else BinanceClient
        return client_cls(
            **extra,
            name=name,
            venue=settings.venue,
            asset=settings.asset,
            exchange=exchange,
            markets=shared.get,
            release=lambda: self._release(key),
            bans=self.bans,
            ban_key=endpoint.key,
            key_id=key,
            policy=self.retry,
            tier_refresh=self._tier_refresh,
            klines=(
                self._kline_book(endpoint, shared).volatility
                if self._volatility and settings.volatility
                else None
            ),
        )

    def order_watch(self, name: str) -> OrderWatch:
        """What the private stream of the account `name` says of its orders (one per name,
        kept across reloads: the stream and the client of an account share it)."""
        watch = self._order_watches.get(name)
        if watch is None:
            watch = self._order_watches[name] = OrderWatch()
        return watch

    def _kline_book(self, endpoint: _Endpoint, shared: _Markets) -> KlineBook:
        book = self._klines.get(endpoint.key)
        if book is None:
            book = KlineBook(
                shared.get,
                name=endpoint.ccxt_id,
                ban_key=endpoint.key,
                bans=self.bans,
                deadline=min(KLINE_DEADLINE_SECONDS, self._timeout),
            )
            self._klines[endpoint.key] = book
        return book

    def mark_stream_key(self, settings: AccountSettings) -> str:
        """The mark stream an account's symbols are followed on (`binance-usdm@production`):
        one per venue and address, shared by every account there."""
        endpoint = _Endpoint(_ccxt_id(settings.venue), settings.base_url, settings.testnet)
        return f"{settings.venue.value}@{endpoint.key.split('@', 1)[1]}"

    def mark_stream(self, settings: AccountSettings, *, heartbeat: float) -> VenueMarkStream:
        """A new public mark stream for the account's venue and address (no traffic until it
        runs); the caller keeps one per `mark_stream_key` and closes it."""
        endpoint = _Endpoint(_ccxt_id(settings.venue), settings.base_url, settings.testnet)
        shared = self._shared(endpoint, settings.venue)
        exchange = self._pro_instance(settings.venue, endpoint, {}, {})
        return VenueMarkStream(
            self.mark_stream_key(settings),
            settings.venue,
            exchange,
            shared.get,
            heartbeat=heartbeat,
        )

    def account_stream(self, name: str, settings: AccountSettings) -> AccountEventStream:
        """A new private stream for the account `name` (no traffic until it runs): Binance's
        user-data stream or Bybit's private topics; the caller closes it."""
        endpoint = _Endpoint(_ccxt_id(settings.venue), settings.base_url, settings.testnet)
        shared = self._shared(endpoint, settings.venue)
        credentials = {
            "apiKey": settings.api_key.get_secret_value(),
            "secret": settings.api_secret.get_secret_value(),
        }
        options = dict(QUIET_OPTIONS)
        if settings.venue.exchange == "bybit":
            # As the REST instances: UTA preset, so ccxt skips its account probe.
            options |= {
                "enableUnifiedAccount": True,
                "enableUnifiedMargin": False,
                "unifiedMarginStatus": 6,
            }
        return AccountEventStream(
            name,
            settings.venue,
            lambda: self._pro_instance(settings.venue, endpoint, credentials, options),
            shared.get,
            order_watch=self.order_watch(name) if settings.venue.exchange == "binance" else None,
        )

    def _pro_instance(
        self,
        venue: Venue,
        endpoint: _Endpoint,
        credentials: dict[str, str],
        options: dict[str, Any],
    ) -> Any:
        """A ccxt.pro instance for a websocket, its URLs pointed at a local `base_url`."""
        options = {"fetchCurrencies": False, **options}
        if venue.exchange == "bybit":
            options["defaultSubType"] = "inverse" if venue.inverse else "linear"
        config: dict[str, Any] = {
            **credentials,
            "timeout": int(self._timeout * 1000),
            "options": options,
        }
        if self._sessions is not None:
            # The shared TLS context, not ccxt's own certificate store per instance (0.9 MiB
            # against 0.26 MiB an instance); the session stays the instance's own, since each
            # websocket holds a connection of its session's pool for as long as it is open.
            config["ssl_context"] = self._sessions.ssl_context
        exchange = _PRO_CLASSES[venue](config)
        self._shared_description(exchange)
        if endpoint.testnet:
            exchange.set_sandbox_mode(True)
        if endpoint.base_url:
            api = exchange.urls["api"]
            exchange.urls = {
                **exchange.urls,
                "api": {
                    **rewrite_api_urls(
                        {k: v for k, v in api.items() if k != "ws"}, endpoint.base_url
                    ),
                    "ws": rewrite_ws_urls(api["ws"], endpoint.base_url),
                },
            }
        return exchange

    async def _release(self, key: str) -> None:
        """A client is done: close its ccxt instance once no other client uses it."""
        if key not in self._instances:
            return
        exchange, users = self._instances[key]
        if users > 1:
            self._instances[key] = (exchange, users - 1)
            return
        del self._instances[key]
        await exchange.close()

    def _address_pacer(self, endpoint: _Endpoint) -> Pacer:
        pacer = self._address_pacers.get(endpoint.key)
        if pacer is None:
            # Bybit's limit on every request from one IP: 600 per 5 seconds.
            limit = VENUE_LIMITS["bybit"]
            pacer = Pacer(limit.limit / limit.window.total_seconds())
            self._address_pacers[endpoint.key] = pacer
        return pacer

    def _shared(self, endpoint: _Endpoint, venue: Venue) -> _Markets:
        shared = self._markets.get(endpoint.key)
        if shared is None:
            shared = _Markets(
                self._instance(venue, endpoint, {}), endpoint, self._tier_refresh, self
            )
            self._markets[endpoint.key] = shared
        return shared

    def _instance(self, venue: Venue, endpoint: _Endpoint, credentials: dict[str, str]) -> Any:
        options: dict[str, Any] = {"fetchCurrencies": False}
        if venue.exchange == "bybit":
            # Preset UTA so ccxt skips its query-api/account-info probe, which read-only keys may fail.
            options |= {
                "fetchMarkets": {"types": ["linear", "inverse"]},
                "enableUnifiedAccount": True,
                "enableUnifiedMargin": False,
                "unifiedMarginStatus": 6,
            }
        # One session and TLS context per event loop, not ccxt's own per instance.
        session = self._sessions.config() if self._sessions is not None else {}
        exchange = CCXT_CLASSES[venue](
            {
                **credentials,
                **session,
                "timeout": int(self._timeout * 1000),
                "enableRateLimit": self._rate_limit,
                "options": options,
            }
        )
        exchange.has = {**exchange.has, "fetchCurrencies": False}
        self._shared_description(exchange)
        if endpoint.testnet:
            exchange.set_sandbox_mode(True)
        if endpoint.base_url:
            exchange.urls = {
                **exchange.urls,
                "api": rewrite_api_urls(exchange.urls["api"], endpoint.base_url),
            }
        return exchange

    def _shared_description(self, exchange: Any) -> None:
        if self._descriptions is not None:
            self._descriptions.share(exchange)

    async def aclose(self) -> None:
        """Close every client and shared instance (each holds an HTTP session)."""
        instances = [exchange for exchange, _ in self._instances.values()]
        instances += [shared.exchange for shared in self._markets.values()]
        self._instances.clear()
        self._markets.clear()
        await asyncio.gather(*(instance.close() for instance in instances), return_exceptions=True)
        if self._sessions is not None:
            await self._sessions.aclose()

    async def __aenter__(self) -> ExchangeHub:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _ccxt_id(venue: Venue) -> str:
    return {
        Venue.BINANCE_USDM: "binanceusdm",
        Venue.BINANCE_COINM: "binancecoinm",
        Venue.BYBIT_LINEAR: "bybit",
        Venue.BYBIT_INVERSE: "bybit",
    }[venue]


async def _no_resync() -> None:
    """Market lists are public: unsigned, so no clock to resync."""
