"""The HTTP side: one aiohttp server on 127.0.0.1 answering Binance and Bybit paths (their paths do not
collide, so a client rewrites every API host to the same base URL), with signatures, timestamps,
request weights and injected faults checked the way the venues do."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from monitor.domain.model import Venue
from monitor.ports import SystemClock
from monitor.simulator import binance, binance_pool, bybit, bybit_pool
from monitor.simulator.clock import ManualClock, SimClock
from monitor.simulator.control import add_control_routes
from monitor.simulator.faults import ActiveFault, FaultBook
from monitor.simulator.limits import BinanceWeights, BybitCounters
from monitor.simulator.market import Liquidation, Market, SimAccount
from monitor.simulator.private import PrivateStreams
from monitor.simulator.protocol import Call, Endpoint, VenueReply, binance_error, bybit_error
from monitor.simulator.scenario import (
    BINANCE,
    BINANCE_USDM_ASSETS,
    OrderSpec,
    Scenario,
    load_scenario,
    parse_fault,
)
from monitor.simulator.streams import StreamHub

_HTML = "text/html"


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What a client needs to reach one simulated account; `pools` lists (venue, asset) it holds."""

    name: str
    exchange: str
    api_key: str
    api_secret: str
    pools: tuple[tuple[Venue, str], ...]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the simulator answered."""

    at: datetime
    method: str
    path: str
    params: Mapping[str, str]
    account: str | None
    status: int
    weight: int
    fault: str | None


class SimulatorServer:
    """A local Binance + Bybit futures venue.

    `async with SimulatorServer("demo", port=0) as sim:` starts it on a free port; `sim.base_url`,
    `sim.accounts`, `sim.clock`, `sim.inject_fault(...)`, `sim.request_log` and `sim.liquidations`
    are what tests and the demo use.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path | Mapping[str, Any] = "demo",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
        request_log_size: int = 10_000,
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.clock: SimClock = clock if clock is not None else SystemClock()
        self.market = Market(self.scenario, self.clock)
        self.faults = FaultBook()
        for spec in self.scenario.faults:
            self.faults.add(spec)
        # The most recent requests, oldest first (bounded so a long run does not grow without end).
        self.request_log: deque[RequestRecord] = deque(maxlen=request_log_size)
        # Seconds the venue's clock runs ahead of this machine's (negative: behind).
        self.server_time_offset = self.scenario.server_time_offset
        self._host = host
        self._port = port
        self._weights = BinanceWeights(self.scenario.limits)
        self._bybit = BybitCounters(self.scenario.limits)
        self._endpoints: dict[str, Endpoint] = binance.endpoints() | bybit.endpoints()
        self._runner: web.AppRunner | None = None
        # The websocket side (mark streams) on the same port.
        self.streams = StreamHub(self.market, self.server_ms)
        # Binance user-data streams and Bybit's private topics.
        self.private = PrivateStreams(self.market, self.server_ms)

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one)."""
        app = web.Application()
        add_control_routes(app, self)
        self.private.add_routes(app, self.streams.binance_coinm)
        self.streams.add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])

    async def stop(self) -> None:
        """Stop listening; requests still in flight are cancelled after a second."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await self.streams.close()
            await self.private.close()
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`: replace the scheme and host of every venue URL with it."""
        return f"http://{self._host}:{self._port}"

    @property
    def accounts(self) -> dict[str, AccountInfo]:
        """Every simulated account by scenario name."""
        return {name: self._account_info(account) for name, account in self.market.accounts.items()}

    @property
    def liquidations(self) -> list[Liquidation]:
        """Every liquidation so far, oldest first (accounts are brought up to date first)."""
        for account in self.market.accounts.values():
            self.market.advance(account)
        return sorted(
            (event for account in self.market.accounts.values() for event in account.liquidations),
            key=lambda event: event.at,
        )

    def advance(self, seconds: float) -> None:
        """Move a manual clock forward."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError(
                "only a ManualClock can be advanced; this simulator runs on wall-clock time"
            )
        self.clock.advance(seconds)

    def set_price(self, feed: str, price: float | None) -> None:
        """Pin a feed's price (None returns it to its scripted path)."""
        self.market.set_price(feed, price)
        self.streams.price_changed()

    async def fill(self, account: str, symbol: str, quantity: float) -> None:
        """A fill: `account`'s position in `symbol` now holds `quantity` (0 closes it); its
        private streams are told."""
        self.market.resize(self.market.accounts[account], symbol, quantity)
        await self.private.account_changed(account, fill=symbol)

    async def place_order(self, account: str, order: OrderSpec) -> None:
        """Rest a new conditional order on `account` (served from now on while it holds the
        symbol); its Binance user-data stream is told. Only Binance's algo service, where
        conditional orders go since the algo-order migration."""
        sim = self.market.accounts[account]
        if sim.exchange != "binance" or order.service != "algo":
            raise ValueError("only Binance algo-service orders can be placed while running")
        instrument = self.scenario.instrument(sim.exchange, order.symbol)
        if instrument is None:
            raise ValueError(f"symbol: {order.symbol!r} is not listed on {sim.exchange}")
        sim.spec = dataclasses.replace(sim.spec, orders=(*sim.spec.orders, order))
        await self.private.order_placed(account, order, len(sim.spec.orders) - 1, instrument)

    async def transfer(self, account: str, asset: str, amount: float) -> None:
        """Move `amount` of `asset` into (or, negative, out of) `account`'s wallet; its private
        streams are told."""
        self.market.transfer(self.market.accounts[account], asset, amount)
        await self.private.account_changed(account)

    def inject_fault(
        self,
        kind: str,
        *,
        account: str | None = None,
        start: float = 0.0,
        duration: float | None = None,
        count: int | None = None,
        delay: float = 30.0,
        retry_after: float = 60.0,
        status: int = 502,
        path: str | None = None,
    ) -> ActiveFault:
        """Make the venue misbehave for `account` (None: every request) from `start` seconds from now,
        for `duration` seconds and/or `count` requests (both None: until cleared). Kinds: rate_limit,
        ip_ban, server_error (with `status`), timeout (answers after `delay` real seconds),
        malformed_json, timestamp, auth, maintenance, busy, stalled_cursor. `path` is a glob on the
        request path."""
        raw: dict[str, Any] = {
            "kind": kind,
            "start": start,
            "delay": delay,
            "retry_after": retry_after,
            "status": status,
        }
        for key, value in (
            ("account", account),
            ("duration", duration),
            ("count", count),
            ("path", path),
        ):
            if value is not None:
                raw[key] = value
        spec = parse_fault(raw, "fault", self.market.accounts)
        return self.faults.add(spec, offset=self.market.elapsed())

    def clear_faults(self) -> None:
        """Lift every injected fault."""
        self.faults.clear()

    def server_ms(self) -> int:
        """The venue's clock in milliseconds: this machine's time plus `server_time_offset`."""
        return int((time.time() + self.server_time_offset) * 1000)

    def _account_info(self, account: SimAccount) -> AccountInfo:
        pools: set[tuple[Venue, str]] = set()
        if binance_pool.pooled(account.spec) or bybit_pool.pooled(account.spec):
            # One entry watches the whole pool; only inverse contracts stay pools of their own.
            linear = Venue.BINANCE_USDM if account.exchange == BINANCE else Venue.BYBIT_LINEAR
            pools.add((linear, "USDT"))
            for position in account.positions:
                if position.instrument.venue.inverse:
                    pools.add((position.instrument.venue, position.instrument.settle))
        else:
            for position in account.positions:
                pools.add((position.instrument.venue, position.instrument.settle))
            for asset in account.wallet:
                pools.add((_wallet_venue(account.exchange, asset), asset))
        return AccountInfo(
            name=account.name,
            exchange=account.exchange,
            api_key=account.spec.api_key,
            api_secret=account.spec.api_secret,
            pools=tuple(sorted(pools)),
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        raw_query = request.rel_url.raw_query_string
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        endpoint = self._endpoints.get(path)
        now = self.clock.now()
        headers: dict[str, str] = {}
        weight = 0
        fault_kind: str | None = None
        account: SimAccount | None = None
        try:
            if endpoint is None:
                raise VenueReply(
                    404, "<html><body><h1>404 Not Found</h1></body></html>", content_type=_HTML
                )
            if request.method != "GET":
                raise VenueReply(
                    405,
                    "<html><body><h1>405 Method Not Allowed</h1></body></html>",
                    content_type=_HTML,
                )
            account = self._claimed_account(request, endpoint)
            weight = endpoint.weight(params)
            self._charge(request, endpoint, account, weight, headers)
            fault = self.faults.take(
                account.name if account else None, path, self.market.elapsed(now)
            )
            if fault is not None:
                fault_kind = fault.spec.kind
                await self._fault(request, endpoint, fault)
            if endpoint.signed:
                account = self._authenticate(request, endpoint, raw_query, params)
            payload = endpoint.handler(
                Call(self.market, params, account, self.server_ms(), self.market.elapsed())
            )
            if fault_kind == "stalled_cursor" and payload.get("nextPageCursor") == "":
                # Bybit's last page may carry a cursor that addresses that page itself.
                payload["nextPageCursor"] = params.get("cursor") or "0"
            if endpoint.exchange != BINANCE:
                payload = {
                    "retCode": 0,
                    "retMsg": "OK",
                    "result": payload,
                    "retExtInfo": {},
                    "time": self.server_ms(),
                }
            response = web.Response(
                text=json.dumps(payload), content_type="application/json", headers=headers
            )
        except VenueReply as reply:
            response = web.Response(
                status=reply.status,
                text=reply.body,
                content_type=reply.content_type,
                headers=headers | reply.headers,
            )
        self.request_log.append(
            RequestRecord(
                at=now,
                method=request.method,
                path=path,
                params=params,
                account=account.name if account else None,
                status=response.status,
                weight=weight,
                fault=fault_kind,
            )
        )
        return response

    def _claimed_account(self, request: web.Request, endpoint: Endpoint) -> SimAccount | None:
        header = "X-MBX-APIKEY" if endpoint.exchange == BINANCE else "X-BAPI-API-KEY"
        key = request.headers.get(header)
        account = self.market.by_key.get(key) if key else None
        return account if account is not None and account.exchange == endpoint.exchange else None

    def _charge(
        self,
        request: web.Request,
        endpoint: Endpoint,
        account: SimAccount | None,
        weight: int,
        headers: dict[str, str],
    ) -> None:
        ip = request.remote or "127.0.0.1"
        now = self.clock.now().timestamp()
        if endpoint.exchange == BINANCE:
            verdict = self._weights.charge(ip, endpoint.family, weight, now)
            header = (
                "X-SAPI-USED-IP-WEIGHT-1M" if endpoint.family == "sapi" else "X-MBX-USED-WEIGHT-1M"
            )
            headers[header] = str(verdict.used)
            if verdict.allowed:
                return
            retry = str(int(verdict.retry_after or 60))
            if verdict.banned:
                banned_until = int((now + (verdict.retry_after or 0)) * 1000)
                raise binance_error(
                    418,
                    -1003,
                    f"Way too many requests; IP({ip}) banned until {banned_until}. Please use the websocket for live updates to avoid bans.",
                    {"Retry-After": retry},
                )
            raise binance_error(
                429,
                -1003,
                f"Too many requests; current limit of IP({ip}) is {self.scenario.limits.binance_weight_per_minute} requests per minute. Please use the websocket for live updates to avoid polling the API.",
                {"Retry-After": retry},
            )
        verdict = self._bybit.charge_ip(ip, now)
        if not verdict.allowed:
            raise VenueReply(
                403,
                "<html><body><h1>403 Forbidden</h1>access too frequent</body></html>",
                content_type=_HTML,
                headers={"Retry-After": str(int(verdict.retry_after or 5))},
            )
        if endpoint.signed and account is not None:
            key_verdict = self._bybit.charge_key(account.spec.api_key, request.path, now)
            reset_ms = (int(now) + 1) * 1000
            headers |= {
                "X-Bapi-Limit": str(self._bybit.key_limit),
                "X-Bapi-Limit-Status": str(max(0, self._bybit.key_limit - key_verdict.used)),
                "X-Bapi-Limit-Reset-Timestamp": str(reset_ms),
            }
            if not key_verdict.allowed:
                raise bybit_error(
                    10006,
                    "Too many visits. Exceeded the API Rate Limit.",
                    headers=headers,
                    now_ms=self.server_ms(),
                )

    async def _fault(self, request: web.Request, endpoint: Endpoint, fault: ActiveFault) -> None:
        spec = fault.spec
        kind = spec.kind
        binance_venue = endpoint.exchange == BINANCE
        ip = request.remote or "127.0.0.1"
        retry = str(int(spec.retry_after))
        if kind == "timeout":
            await asyncio.sleep(spec.delay)
            return
        if kind == "stalled_cursor":
            return  # the answer itself is altered once the handler has built it
        if kind == "server_error":
            raise VenueReply(
                spec.status,
                f"<html><body><h1>{spec.status} Server Error</h1></body></html>",
                content_type=_HTML,
            )
        if kind == "malformed_json":
            truncated = (
                '[{"symbol":"BTCUSDT","markPrice":"6'
                if binance_venue
                else '{"retCode":0,"retMsg":"OK","result":{"list":[{"sym'
            )
            raise VenueReply(200, truncated)
        if binance_venue:
            until = self.server_ms() + int(spec.retry_after * 1000)
            replies = {
                "rate_limit": binance_error(
                    429,
                    -1003,
                    f"Too many requests; current limit of IP({ip}) is {self.scenario.limits.binance_weight_per_minute} requests per minute. Please use the websocket for live updates to avoid polling the API.",
                    {"Retry-After": retry},
                ),
                "ip_ban": binance_error(
                    418,
                    -1003,
                    f"Way too many requests; IP({ip}) banned until {until}. Please use the websocket for live updates to avoid bans.",
                    {"Retry-After": retry},
                ),
                "timestamp": binance_error(
                    400, -1021, "Timestamp for this request is outside of the recvWindow."
                ),
                "auth": binance_error(
                    401, -2015, f"Invalid API-key, IP, or permissions for action, request ip: {ip}"
                ),
                "maintenance": binance_error(503, 1, "System is under maintenance."),
                "busy": binance_error(
                    503,
                    -1008,
                    "Server is currently overloaded with other requests. Please try again in a few minutes.",
                ),
            }
            raise replies[kind]
        now_ms = self.server_ms()
        if kind == "rate_limit":
            raise bybit_error(
                10006,
                "Too many visits. Exceeded the API Rate Limit.",
                headers={
                    "X-Bapi-Limit-Status": "0",
                    "X-Bapi-Limit-Reset-Timestamp": str(now_ms + int(spec.retry_after * 1000)),
                },
                now_ms=now_ms,
            )
        if kind == "ip_ban":
            raise VenueReply(
                403,
                "<html><body><h1>403 Forbidden</h1>access too frequent</body></html>",
                content_type=_HTML,
                headers={"Retry-After": retry},
            )
        if kind == "timestamp":
            raise bybit_error(
                10002, _bybit_timestamp_message(now_ms - 60_000, now_ms, 5000), now_ms=now_ms
            )
        if kind == "auth":
            raise bybit_error(10003, "API key is invalid.", status=401, now_ms=now_ms)
        if kind == "busy":
            raise bybit_error(10016, "Internal server error.", now_ms=now_ms)
        raise VenueReply(
            503,
            "<html><body><h1>503 Service Unavailable</h1>The system is under maintenance.</body></html>",
            content_type=_HTML,
        )

    def _authenticate(
        self, request: web.Request, endpoint: Endpoint, raw_query: str, params: Mapping[str, str]
    ) -> SimAccount:
        if endpoint.exchange == BINANCE:
            return self._binance_auth(request, endpoint, raw_query, params)
        return self._bybit_auth(request, raw_query)

    def _binance_auth(
        self, request: web.Request, endpoint: Endpoint, raw_query: str, params: Mapping[str, str]
    ) -> SimAccount:
        ip = request.remote or "127.0.0.1"
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise binance_error(401, -2014, "API-key format invalid.")
        account = self.market.by_key.get(key)
        denied = binance_error(
            401, -2015, f"Invalid API-key, IP, or permissions for action, request ip: {ip}"
        )
        if account is None or account.exchange != BINANCE:
            raise denied
        permissions = account.spec.permissions
        if not permissions.read or (
            endpoint.family in ("fapi", "dapi") and not permissions.futures
        ):
            raise denied
        pairs = raw_query.split("&") if raw_query else []
        signatures = [p.split("=", 1)[1] for p in pairs if p.startswith("signature=")]
        signed_part = "&".join(p for p in pairs if not p.startswith("signature="))
        try:
            timestamp = int(params["timestamp"])
        except (KeyError, ValueError):
            raise binance_error(
                400,
                -1102,
                "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
            ) from None
        try:
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise binance_error(
                400, -1102, "Mandatory parameter 'recvWindow' was malformed."
            ) from None
        if recv_window > 60_000:
            raise binance_error(400, -1131, "recvWindow must be less than 60000")
        expected = hmac.new(
            account.spec.api_secret.encode(), signed_part.encode(), hashlib.sha256
        ).hexdigest()
        if len(signatures) != 1 or not hmac.compare_digest(signatures[0], expected):
            raise binance_error(400, -1022, "Signature for this request is not valid.")
        server = self.server_ms()
        if timestamp >= server + 1000:
            raise binance_error(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server - timestamp > recv_window:
            raise binance_error(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        return account

    def _bybit_auth(self, request: web.Request, raw_query: str) -> SimAccount:
        now_ms = self.server_ms()
        key = request.headers.get("X-BAPI-API-KEY", "")
        account = self.market.by_key.get(key) if key else None
        if account is None or account.exchange == BINANCE:
            raise bybit_error(10003, "API key is invalid.", status=401, now_ms=now_ms)
        timestamp_text = request.headers.get("X-BAPI-TIMESTAMP", "")
        window_text = request.headers.get("X-BAPI-RECV-WINDOW", "5000")
        try:
            timestamp = int(timestamp_text)
            recv_window = int(window_text)
        except ValueError:
            raise bybit_error(
                10002, _bybit_timestamp_message(0, now_ms, 5000), now_ms=now_ms
            ) from None
        if not now_ms - recv_window <= timestamp < now_ms + 1000:
            raise bybit_error(
                10002, _bybit_timestamp_message(timestamp, now_ms, recv_window), now_ms=now_ms
            )
        origin = f"{timestamp_text}{key}{window_text}{raw_query}"
        expected = hmac.new(
            account.spec.api_secret.encode(), origin.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-BAPI-SIGN", ""), expected):
            raise bybit_error(
                10004, f"error sign! origin_string[{origin}]", status=401, now_ms=now_ms
            )
        return account


def _bybit_timestamp_message(timestamp: int, server: int, recv_window: int) -> str:
    return (
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{timestamp}],server_timestamp[{server}],recv_window[{recv_window}]"
    )


def _wallet_venue(exchange: str, asset: str) -> Venue:
    if exchange == BINANCE:
        return Venue.BINANCE_USDM if asset in BINANCE_USDM_ASSETS else Venue.BINANCE_COINM
    return Venue.BYBIT_LINEAR if asset in ("USDT", "USDC") else Venue.BYBIT_INVERSE
