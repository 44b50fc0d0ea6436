"""The adapter's own logic without a venue: URL rewriting, tier tracking, retry budget, request budget."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import ccxt.async_support as ccxt
import pytest
from pydantic import SecretStr

from monitor.config.accounts import AccountSettings
from monitor.domain.errors import ExchangeAuthError, ExchangeDataError, ExchangeUnavailable
from monitor.domain.model import Tier, Venue
from monitor.exchanges import ExchangeHub
from monitor.exchanges.errors import translate
from monitor.exchanges.probe import request_budget
from monitor.exchanges.resilience import BanBoard, call
from monitor.exchanges.tiers import TierBook, tiers_from_rows
from monitor.exchanges.urls import rewrite_api_urls
from monitor.retry import RetryPolicy

FAST = RetryPolicy(
    initial=timedelta(seconds=0.01),
    maximum=timedelta(seconds=0.02),
    attempts=3,
    max_wait=timedelta(seconds=0.5),
)


def test_rewrite_keeps_paths_and_nested_dicts() -> None:
    urls = {
        "fapiPrivateV3": "https://fapi.binance.com/fapi/v3",
        "ws": {"linear": "wss://fstream.binance.com/ws"},
        "public": "https://api.{hostname}",
        "rateLimit": 50,
    }
    rewritten = rewrite_api_urls(urls, "http://127.0.0.1:8900/")
    assert rewritten == {
        "fapiPrivateV3": "http://127.0.0.1:8900/fapi/v3",
        "ws": {"linear": "wss://fstream.binance.com/ws"},
        "public": "http://127.0.0.1:8900",
        "rateLimit": 50,
    }
    assert urls["fapiPrivateV3"] == "https://fapi.binance.com/fapi/v3"


def test_rewrite_covers_every_ccxt_url() -> None:
    for cls in (ccxt.binanceusdm, ccxt.binancecoinm, ccxt.bybit):
        exchange = cls()
        rewritten = rewrite_api_urls(exchange.urls["api"], "http://127.0.0.1:1")
        flat: list[str] = []

        def walk(value: object, out: list[str]) -> None:
            if isinstance(value, dict):
                for item in value.values():
                    walk(item, out)
            elif isinstance(value, str):
                out.append(value)

        walk(rewritten, flat)
        http = [url for url in flat if url.startswith("http")]
        assert http
        assert all(url.startswith("http://127.0.0.1:1") for url in http), cls


def test_tiers_last_cap_is_open_and_order_is_by_floor() -> None:
    table = tiers_from_rows([(50_000, 600_000, 0.005, 50), (0, 50_000, 0.004, 0)])
    assert table == (Tier(0, 50_000, 0.004, 0), Tier(50_000, None, 0.005, 50))


def test_tier_book_reports_first_sight_and_changes_and_refreshes() -> None:
    now = [0.0]
    book = TierBook("main", Venue.BINANCE_USDM, refresh_interval=60, clock=lambda: now[0])
    first = tiers_from_rows([(0, 50_000, 0.004, 0)])
    second = tiers_from_rows([(0, 50_000, 0.005, 0)])
    assert book.stale({"BTCUSDT"}) == ["BTCUSDT"]
    book.update({"BTCUSDT": first})
    assert book.stale({"BTCUSDT"}) == []
    [seen] = book.drain()
    assert seen.previous is None
    assert not seen.is_change
    now[0] = 61.0
    assert book.stale({"BTCUSDT"}) == ["BTCUSDT"]
    book.update({"BTCUSDT": first})
    assert book.drain() == []
    book.update({"BTCUSDT": second})
    [changed] = book.drain()
    assert changed.is_change
    assert changed.previous == first
    assert changed.current == second
    assert book.table("BTCUSDT") == second


def test_accounts_hold_one_object_per_equal_table() -> None:
    """Each account fetches its own copy; equal copies become one object, which the margin
    engine's memory of table shapes (by identity) then recognises for every account."""
    books = [TierBook(name, Venue.BINANCE_USDM, refresh_interval=60) for name in ("a", "b")]
    for book in books:
        book.update(
            {"BTCUSDT": tiers_from_rows([(0, 50_000, 0.004, 0), (50_000, None, 0.005, 50)])}
        )
    first, second = (book.table("BTCUSDT") for book in books)
    assert first is not None
    assert first is second
    books[1].update({"BTCUSDT": tiers_from_rows([(0, 50_000, 0.0045, 0)])})
    assert books[1].table("BTCUSDT") != first  # a changed table is its own


def test_ban_board_keeps_the_longer_ban() -> None:
    now = [100.0]
    bans = BanBoard(clock=lambda: now[0])
    bans.ban("binanceusdm@x", 30)
    bans.ban("binanceusdm@x", 5)
    assert bans.remaining("binanceusdm@x") == 30
    now[0] = 120.0
    assert bans.remaining("binanceusdm@x") == 10
    assert bans.remaining("bybit@x") == 0


async def _no_resync() -> None:
    return None


async def test_transient_failures_are_retried_until_success() -> None:
    calls = []

    async def request() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ccxt.ExchangeNotAvailable("binanceusdm 503 Service Unavailable")
        return "ok"

    result = await call(
        request, where="w", ban_key="k", bans=BanBoard(), policy=FAST, resync_clock=_no_resync
    )
    assert result == "ok"
    assert len(calls) == 3


async def test_budget_exhausted_gives_a_retryable_error() -> None:
    async def request() -> str:
        raise ccxt.RequestTimeout(
            "binanceusdm GET http://h/fapi/v3/account?timestamp=1&signature=ab"
        )

    with pytest.raises(ExchangeUnavailable) as caught:
        await call(
            request,
            where="binance-usdm main: account",
            ban_key="k",
            bans=BanBoard(),
            policy=FAST,
            resync_clock=_no_resync,
        )
    assert "binance-usdm main: account: request timed out" in str(caught.value)
    assert "signature" not in str(caught.value)


async def test_auth_errors_are_not_retried() -> None:
    calls = []

    async def request() -> str:
        calls.append(1)
        raise ccxt.AuthenticationError('binanceusdm {"code":-2015,"msg":"Invalid API-key"}')

    with pytest.raises(ExchangeAuthError):
        await call(
            request, where="w", ban_key="k", bans=BanBoard(), policy=FAST, resync_clock=_no_resync
        )
    assert len(calls) == 1


async def test_clock_skew_resyncs_once_then_succeeds() -> None:
    resyncs = []
    calls = []

    async def resync() -> None:
        resyncs.append(1)

    async def request() -> str:
        calls.append(1)
        if not resyncs:
            raise ccxt.InvalidNonce('{"code":-1021,"msg":"Timestamp outside of recvWindow"}')
        return "ok"

    assert (
        await call(
            request, where="w", ban_key="k", bans=BanBoard(), policy=FAST, resync_clock=resync
        )
        == "ok"
    )
    assert len(resyncs) == 1
    assert len(calls) == 2


async def test_long_ban_fails_fast_and_blocks_further_requests() -> None:
    bans = BanBoard()
    calls = []

    async def request() -> str:
        calls.append(1)
        exc = ccxt.DDoSProtection("binanceusdm 418 I'm a teapot")
        exc.retry_after = 120.0
        raise exc

    with pytest.raises(ExchangeUnavailable) as caught:
        await call(request, where="w", ban_key="k", bans=bans, policy=FAST, resync_clock=_no_resync)
    assert caught.value.retry_after == pytest.approx(120, abs=1)
    assert len(calls) == 1
    with pytest.raises(ExchangeUnavailable, match="banned this address"):
        await call(request, where="w", ban_key="k", bans=bans, policy=FAST, resync_clock=_no_resync)
    assert len(calls) == 1


async def test_short_ban_is_waited_out_inside_the_fetch() -> None:
    calls = []

    async def request() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            exc = ccxt.RateLimitExceeded("bybit 429")
            exc.retry_after = 0.2
            raise exc
        return "ok"

    assert (
        await call(
            request, where="w", ban_key="k", bans=BanBoard(), policy=FAST, resync_clock=_no_resync
        )
        == "ok"
    )
    assert calls[1] - calls[0] >= 0.19


def test_translation_of_other_failures() -> None:
    assert isinstance(translate(ccxt.OnMaintenance("x"), "w"), ExchangeUnavailable)
    assert isinstance(translate(ccxt.BadSymbol("x"), "w"), ExchangeDataError)
    assert isinstance(
        translate(ccxt.PermissionDenied("10010 Unmatched IP"), "w"), ExchangeAuthError
    )
    assert isinstance(
        translate(ccxt.ExchangeError('bybit {"retCode":10016}'), "w"), ExchangeUnavailable
    )
    timeout = 'bybit {"retCode":10000,"retMsg":"Server Timeout"}'
    assert isinstance(translate(ccxt.ExchangeError(timeout), "w"), ExchangeUnavailable)
    busy = 'binancecoinm {"code":-1008,"msg":"Server is currently overloaded"}'
    assert isinstance(translate(ccxt.ExchangeError(busy), "w"), ExchangeUnavailable)
    # A code that merely starts like a transient one is not one.
    refused = 'bybit {"retCode":100160,"retMsg":"no"}'
    assert isinstance(translate(ccxt.ExchangeError(refused), "w"), ExchangeDataError)
    banned = translate(ccxt.DDoSProtection(f"banned until {int((time.time() + 60) * 1000)}"), "w")
    assert isinstance(banned, ExchangeUnavailable)
    assert banned.retry_after == pytest.approx(60, abs=2)


def test_request_budget_sums_per_venue_limit() -> None:
    lines = {
        line.group: line
        for line in request_budget(
            [
                (Venue.BINANCE_USDM, timedelta(seconds=10)),
                (Venue.BINANCE_USDM, timedelta(seconds=5)),
                (Venue.BYBIT_LINEAR, timedelta(seconds=5)),
                (Venue.BYBIT_INVERSE, timedelta(seconds=1)),
            ]
        )
    }
    # One held symbol's protective orders included (openAlgoOrders + openOrders, weight 1 each).
    assert lines["binance-fapi"].used == pytest.approx(12 * 6 + 12 * 12)
    assert lines["binance-fapi"].accounts == 2
    # A bybit-linear poll reads the USDT and the USDC positions (and conditional orders) of a
    # unified pool.
    assert lines["bybit"].used == pytest.approx(6 * 1 + 4 * 5)
    assert lines["bybit"].share == pytest.approx(26 / 600)
    assert "of 2400 per IP" in lines["binance-fapi"].describe()


async def test_testnet_uses_the_venues_test_hosts() -> None:
    async with ExchangeHub() as hub:
        settings = AccountSettings(
            venue=Venue.BINANCE_USDM,
            api_key=SecretStr("k"),
            api_secret=SecretStr("s"),
            testnet=True,
        )
        client = hub.client_for("main", settings)
        assert "testnet" in client.exchange.urls["api"]["fapiPrivateV3"]
        production = hub.client_for("prod", settings.model_copy(update={"testnet": False}))
        assert production.exchange.urls["api"]["fapiPrivateV3"].startswith(
            "https://fapi.binance.com"
        )
        assert production.exchange is not client.exchange


@pytest.mark.parametrize(
    ("venue", "path", "code", "expected"),
    [
        (Venue.BINANCE_USDM, "/fapi/v3/account", -1008, ExchangeUnavailable),
        (Venue.BINANCE_USDM, "/fapi/v3/account", -1005, ExchangeAuthError),
        (Venue.BINANCE_COINM, "/dapi/v1/account", -2023, ExchangeUnavailable),
        (Venue.BINANCE_COINM, "/dapi/v1/account", -1005, ExchangeAuthError),
    ],
)
async def test_binance_error_codes_behind_a_base_url_mean_what_they_mean_in_production(
    venue: Venue, path: str, code: int, expected: type[Exception]
) -> None:
    # ccxt chooses Binance's per-API codes by host name; a proxy or the simulator has another host.
    response = {"code": code, "msg": "venue says no"}
    async with ExchangeHub() as hub:
        for base_url in (None, "http://127.0.0.1:9"):
            settings = AccountSettings(
                venue=venue, api_key=SecretStr("k"), api_secret=SecretStr("s"), base_url=base_url
            )
            exchange = hub.client_for(f"at {base_url}", settings).exchange
            host = base_url or f"https://{path.split('/')[1]}.binance.com"
            with pytest.raises(ccxt.BaseError) as raised:
                exchange.handle_errors(
                    400,
                    "Bad Request",
                    host + path,
                    "GET",
                    {},
                    json.dumps(response),
                    response,
                    {},
                    None,
                )
            assert isinstance(translate(raised.value, "w"), expected), base_url
