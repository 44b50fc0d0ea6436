"""What every venue adapter shares: the ccxt instance for one API key, the guarded request path,
the tier cache and the lifecycle."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

import ccxt.async_support as ccxt

from monitor.domain.errors import ExchangeDataError, ExchangeUnavailable
from monitor.domain.model import AccountState, Venue
from monitor.domain.volatility import SymbolVolatility
from monitor.exchanges.errors import parse_retry_after
from monitor.exchanges.pacing import Pacer
from monitor.exchanges.probe import ProbeReport
from monitor.exchanges.resilience import BanBoard, call
from monitor.exchanges.tiers import TierBook
from monitor.ports import TierChange
from monitor.retry import RetryPolicy


class _RetryAfterAware:
    """Stamps the venue's Retry-After onto the ccxt error raised for the response, so the ban
    window survives even when several requests of one instance are in flight."""

    _error_headers: Any = None
    # A bare 403 is an IP ban on Bybit ("access too frequent", at least 10 minutes per its docs).
    forbidden_ban_seconds: float | None = None

    def handle_errors(self, *args: Any) -> Any:
        # (code, reason, url, method, headers, body, response, request_headers, request_body)
        self._error_headers = args[4]
        try:
            return super().handle_errors(*args)  # type: ignore[misc]
        except ccxt.BaseError as exc:
            exc.retry_after = parse_retry_after(args[4])
            raise

    def handle_http_status_code(self, *args: Any) -> Any:
        # Runs right after handle_errors for the same response, with no await in between.
        try:
            return super().handle_http_status_code(*args)  # type: ignore[misc]
        except ccxt.BaseError as exc:
            exc.retry_after = parse_retry_after(self._error_headers)
            if exc.retry_after is None and args[0] == 403:
                exc.retry_after = self.forbidden_ban_seconds
            raise


class _Paced:
    """Paces requests with a `Pacer` (sleeps until the slot) instead of ccxt's throttler, which
    wakes the event loop every millisecond while a request waits; same bucket, same costs."""

    def init_throttler(self, cost: Any = None) -> None:
        self.throttler = Pacer.from_bucket(self.tokenBucket)  # type: ignore[attr-defined]


# ccxt picks Binance's per-API error codes by host (fapi.binance.com); behind `base_url` (a proxy,
# the simulator) only the path still says which API answered.
_BINANCE_API_OF_PATH = {
    "fapi": "linear",
    "dapi": "inverse",
    "api": "spot",
    "sapi": "spot",
    "eapi": "option",
    "papi": "portfolioMargin",
}


class _BinanceErrorsByPath:
    """Keeps Binance's per-API error codes (-1008 server busy is retryable, -1005 IP not
    whitelisted is an auth failure) when the host is not Binance's own."""

    def get_exceptions_by_url(self, url: Any, exact_or_broad: str) -> Any:
        found = super().get_exceptions_by_url(url, exact_or_broad)  # type: ignore[misc]
        if found or not isinstance(url, str):
            return found
        first_segment = urlsplit(url).path.lstrip("/").split("/", 1)[0]
        api = _BINANCE_API_OF_PATH.get(first_segment)
        if api is None:
            return found
        return self.exceptions.get(api, {}).get(exact_or_broad, {})  # type: ignore[attr-defined]


# Binance counts request weight per address: 2400 per minute on fapi and on dapi.
BINANCE_WEIGHT_PER_MINUTE = 2400


class _BinanceWeights:
    """The shared per-address throttle counts Binance's documented request weights at Binance's
    rate. ccxt charges 1 for the v3 account and positionRisk calls (Binance: 5 each) and refills
    at 1200 per minute, so it let a poll load through that Binance answers with 429, then 418."""

    _venue_weights: ClassVar[Mapping[tuple[str, str], float]] = {
        ("fapiPrivateV3", "account"): 5,
        ("fapiPrivateV3", "positionRisk"): 5,
        # The margin model and the Multi-Assets asset index (all coins), and Portfolio Margin's
        # papi reads, at the weights Binance documents.
        ("fapiPrivate", "multiAssetsMargin"): 30,
        ("fapiPublic", "assetIndex"): 10,
        ("papi", "account"): 20,
        ("papi", "balance"): 20,
        ("papi", "um/positionRisk"): 5,
        ("papi", "um/leverageBracket"): 1,
    }

    def describe(self) -> Any:
        return self.deep_extend(  # type: ignore[attr-defined]
            super().describe(),  # type: ignore[misc]
            {"rateLimit": 60_000 / BINANCE_WEIGHT_PER_MINUTE},
        )

    def calculate_rate_limiter_cost(
        self, api: Any, method: Any, path: Any, params: Any, config: Any = None
    ) -> Any:
        family = api[0] if isinstance(api, list | tuple) and api else api
        weight = self._venue_weights.get((str(family), str(path)))
        if weight is not None:
            return weight
        return super().calculate_rate_limiter_cost(  # type: ignore[misc]
            api, method, path, params, config or {}
        )


class BinanceUsdm(
    _Paced,
    _RetryAfterAware,
    _BinanceErrorsByPath,
    _BinanceWeights,
    ccxt.binanceusdm,  # type: ignore[misc]
):
    """ccxt's Binance USDⓈ-M class with Retry-After stamping, path-based error codes and
    Binance's request weights."""


class BinanceCoinm(
    _Paced,
    _RetryAfterAware,
    _BinanceErrorsByPath,
    _BinanceWeights,
    ccxt.binancecoinm,  # type: ignore[misc]
):
    """ccxt's Binance COIN-M class with Retry-After stamping, path-based error codes and
    Binance's request weights."""


class Bybit(_Paced, _RetryAfterAware, ccxt.bybit):  # type: ignore[misc]
    """ccxt's Bybit v5 class with Retry-After stamping."""

    forbidden_ban_seconds = 600.0


CCXT_CLASSES: Mapping[Venue, type[Any]] = {
    Venue.BINANCE_USDM: BinanceUsdm,
    Venue.BINANCE_COINM: BinanceCoinm,
    Venue.BYBIT_LINEAR: Bybit,
    Venue.BYBIT_INVERSE: Bybit,
}


async def all_of(*requests: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run requests concurrently; the first failure cancels the rest and is raised as itself, so a
    fetch either has every part or none (no orphaned request keeps running after a failure)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(request) for request in requests]
    except BaseExceptionGroup as failures:
        first = failures.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [task.result() for task in tasks]


# The sigmas of the symbols asked for and the assumption sentences for those left unknown (the
# hub's `KlineBook.volatility`, shared by the accounts of one venue and address).
VolatilityReader = Callable[
    [Venue, Iterable[str]],
    Awaitable[tuple[tuple[SymbolVolatility, ...], tuple[str, ...]]],
]

# The longest a close waits for a running fetch (its retries are bounded well below this).
_CLOSE_WAIT = 60.0


class VenueClient(abc.ABC):
    """One configured account on one venue; implements `monitor.ports.ExchangeClient`."""

    def __init__(
        self,
        *,
        name: str,
        venue: Venue,
        asset: str,
        exchange: Any,
        markets: Callable[..., Awaitable[Any]],
        release: Callable[[], Awaitable[None]],
        bans: BanBoard,
        ban_key: str,
        key_id: str,
        policy: RetryPolicy,
        tier_refresh: float,
        klines: VolatilityReader | None = None,
    ) -> None:
        self.name = name
        self.venue = venue
        self.asset = asset
        self.exchange = exchange
        self._markets = markets
        self._release = release
        self._bans = bans
        self._ban_key = ban_key
        # Limits a venue applies per API key (Bybit 10006) hold for every entry using that key.
        self._key_id = key_id
        self._policy = policy
        self.tiers = TierBook(name, venue, tier_refresh)
        self._in_flight = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._klines = klines

    @property
    def label(self) -> str:
        """How errors name this account: "binance-usdm main"."""
        return f"{self.venue.value} {self.name}"

    async def request(self, what: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ccxt's implicit API `method` under the retry budget and the venue's ban windows."""
        function = getattr(self.exchange, method)
        arguments = dict(params or {})

        async def attempt() -> Any:
            response = await function(arguments)
            # ccxt hands back the raw text when a body is not JSON (truncated by a proxy, an HTML
            # error page with status 200): retry it like any other transient failure.
            if not isinstance(response, dict | list):
                raise ExchangeUnavailable(
                    f"{self.label}: {what}: the exchange sent a malformed (non-JSON) response"
                )
            return response

        return await call(
            attempt,
            where=f"{self.label}: {what}",
            ban_key=self._ban_key,
            account_key=self._key_id,
            bans=self._bans,
            policy=self._policy,
            resync_clock=self.resync_clock,
        )

    async def ensure_markets(self, *, reload: bool = False) -> None:
        """Share the venue's current market list (loaded once per venue by the hub) with this
        instance; `reload` re-reads it first (a symbol appeared that the list lacks)."""
        master = await self._markets(force=reload)
        if self.exchange.markets is not master.markets:
            self.exchange.set_markets_from_exchange(master)

    async def ensure_listed(self, symbols: Iterable[str]) -> None:
        """Re-read the market list once if any of `symbols` is missing from it (a new listing)."""
        if any(symbol not in (self.exchange.markets_by_id or {}) for symbol in symbols):
            await self.ensure_markets(reload=True)

    def listed_market(self, symbol_id: str, where: str) -> Mapping[str, Any]:
        """ccxt's market of the venue's symbol id (settle coin, contract size); `where` names the
        row that mentions a symbol the market list lacks."""
        markets = (self.exchange.markets_by_id or {}).get(symbol_id)
        if not markets:
            raise ExchangeDataError(f"{where}.symbol: {symbol_id!r} is not a listed market")
        market: Mapping[str, Any] = markets[0]
        return market

    async def resync_clock(self) -> None:
        """Measure the offset to the venue's clock; signed requests use it from now on."""
        server_ms = await self.server_time_ms()
        self.exchange.options["timeDifference"] = self.exchange.milliseconds() - server_ms

    @abc.abstractmethod
    async def server_time_ms(self) -> int:
        """The venue's clock in milliseconds since the epoch."""

    async def fetch_account(self) -> AccountState:
        """The pool's complete current state, or an error: never a partial state."""
        self._in_flight += 1
        self._idle.clear()
        try:
            state = await self._fetch_account()
            if self._klines is not None and state.positions:
                # Optional: an unreadable kline leaves sigmas unknown with an assumption.
                volatility, assumed = await self._klines(
                    self.venue, (p.symbol for p in state.positions)
                )
                state = replace(
                    state, volatility=volatility, assumptions=state.assumptions + assumed
                )
            return await self._with_protective_orders(state)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    @abc.abstractmethod
    async def _fetch_account(self) -> AccountState:
        """`fetch_account` of the venue."""

    async def _with_protective_orders(self, state: AccountState) -> AccountState:
        """The state with its open protective orders (monitor.exchanges.stops); a venue that
        reads them elsewhere, or not at all (every stop then `unknown`), keeps this default."""
        return state

    @abc.abstractmethod
    async def probe(self) -> ProbeReport:
        """Reachability, key permissions, position and margin modes (for check-config --connect)."""

    def drain_tier_changes(self) -> list[TierChange]:
        """Tier tables seen for the first time or changed since the last call."""
        return self.tiers.drain()

    async def close(self) -> None:
        """Release this account's ccxt instance (closed once no other entry of the key uses it),
        after the fetch still running on it, if any, has finished. Closing twice is harmless."""
        if self._closed:
            return  # a second release would close the instance under another entry of the key
        self._closed = True
        # A reload or removal closes the client while a poll may still run on it; closing the
        # session under that poll failed it with "the exchange refused the request".
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), _CLOSE_WAIT)
        await self._release()
