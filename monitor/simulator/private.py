"""The private websockets: Binance's user-data stream and Bybit v5's private topics, pushing an
event whenever the simulator changes an account (a fill or a transfer asked through the control
API, a conditional order placed; a liquidation is not pushed).

Binance (USDⓈ-M `/fapi/v1/listenKey`, COIN-M `/dapi/v1/listenKey`, USER_STREAM security: only the
`X-MBX-APIKEY` header): POST answers `{"listenKey": "..."}` (the active key again, extended, if the
account has one), PUT extends it (`-1125 This listenKey does not exist.` otherwise), DELETE closes
it. A key is valid for `listen_key_validity` seconds (60 minutes) after its last POST/PUT; when it
lapses the stream sends `{"e": "listenKeyExpired", ...}` and closes. The websocket is
`/private/ws?listenKey=KEY` (USDⓈ-M, as ccxt.pro builds it) or `/ws/KEY` (COIN-M), pushing
`ACCOUNT_UPDATE` (balances `B` and positions `P` of that venue) and, for a fill,
`ORDER_TRADE_UPDATE` first.

Bybit (`/v5/private`): `{"op": "auth", "args": [apiKey, expires, signature]}` with signature =
HMAC-SHA256(secret, "GET/realtime" + expires), expires in the future; then `{"op": "subscribe",
"args": ["position", "wallet"]}`; pushes `{"id", "topic", "creationTime", "data": [...]}` with the
position rows (as `/v5/position/list` has them, plus `category`) and the wallet rows (as
`/v5/account/wallet-balance`). `{"op": "ping"}` is answered with `{"op": "pong", ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from monitor.domain.model import MarginMode, Side, Venue
from monitor.simulator import bybit
from monitor.simulator.market import unrealized_pnl
from monitor.simulator.orders import binance_algo_update
from monitor.simulator.protocol import Call, VenueReply, fmt, quantity
from monitor.simulator.scenario import Instrument, OrderSpec

if TYPE_CHECKING:
    from monitor.simulator.market import Market, SimAccount

MODES = ("on", "off")
# Binance: "A User Data Stream listenKey is valid for 60 minutes after creation."
LISTEN_KEY_VALIDITY = 3600.0
_PATHS = {"/fapi/v1/listenKey": Venue.BINANCE_USDM, "/dapi/v1/listenKey": Venue.BINANCE_COINM}


@dataclass(slots=True)
class _ListenKey:
    account: str
    venue: Venue
    expires: float  # monotonic


@dataclass(eq=False)
class _Private:
    """One authenticated private websocket."""

    socket: web.WebSocketResponse
    exchange: str
    account: str | None = None
    venue: Venue | None = None  # Binance: the listenKey's venue
    listen_key: str | None = None
    topics: set[str] = field(default_factory=set)
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex[:20])


class PrivateStreams:
    """Listen keys, private connections, and the events pushed to them."""

    def __init__(self, market: Market, server_ms: Callable[[], int]) -> None:
        self._market = market
        self._server_ms = server_ms
        self._keys: dict[str, _ListenKey] = {}
        self._connections: set[_Private] = set()
        self._expiry: asyncio.Task[None] | None = None
        self.listen_key_validity = LISTEN_KEY_VALIDITY
        self.mode = "on"
        # Events pushed so far, and listenKey keepalives (PUT) answered (tests read them).
        self.pushed = 0
        self.keepalives = 0

    @property
    def connections(self) -> int:
        """Open private websocket connections."""
        return len(self._connections)

    def subscribed(self, account: str) -> set[str]:
        """The private topics `account`'s open connections subscribed to (Bybit)."""
        return {t for c in self._connections if c.account == account for t in c.topics}

    def add_routes(
        self,
        app: web.Application,
        coinm_market: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> None:
        """Register the listenKey endpoints and the private websockets; `/ws/{stream}` serves a
        listenKey here and any other stream with `coinm_market`."""
        for path in _PATHS:
            for method in ("POST", "PUT", "DELETE"):
                app.router.add_route(method, path, self._listen_key)
        app.router.add_get("/private/ws", self._binance_usdm)
        app.router.add_get("/private/ws/{key}", self._binance_usdm)

        async def coinm(request: web.Request) -> web.StreamResponse:
            key = request.match_info["stream"]
            if key in self._keys and self._keys[key].venue is Venue.BINANCE_COINM:
                return await self._binance(request, key)
            return await coinm_market(request)

        app.router.add_get("/ws/{stream}", coinm)
        app.router.add_get("/v5/private", self._bybit)

    async def set_mode(self, mode: str) -> None:
        """ "on" or "off" (drop every private connection and refuse new ones)."""
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}")
        self.mode = mode
        if mode == "off":
            for connection in list(self._connections):
                await connection.socket.close(code=1001, message=b"going away")

    async def expire_listen_keys(self) -> int:
        """Let every listen key lapse now (as 60 minutes without a keepalive would); the number
        of keys expired."""
        for key in self._keys.values():
            key.expires = 0.0
        return await self._expire()

    async def close(self) -> None:
        """Close every private connection."""
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        for connection in list(self._connections):
            await connection.socket.close(code=1001, message=b"server shutdown")

    async def account_changed(self, account: str, fill: str | None = None) -> None:
        """Push the account's state to its private connections; `fill` names the symbol of a
        fill (Binance sends its ORDER_TRADE_UPDATE before the ACCOUNT_UPDATE)."""
        if self.mode != "on":
            return
        sim = self._market.accounts[account]
        for connection in list(self._connections):
            if connection.account != account or connection.socket.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                if connection.exchange == "binance":
                    await self._push_binance(connection, sim, fill)
                else:
                    await self._push_bybit(connection, sim)

    async def order_placed(
        self, account: str, order: OrderSpec, number: int, instrument: Instrument
    ) -> None:
        """Tell the account's Binance user-data connections of an algo-service order placed
        (`ALGO_UPDATE`); Bybit's topics served here (position, wallet) carry no orders."""
        if self.mode != "on":
            return
        event = binance_algo_update(order, number, instrument, self._server_ms())
        for connection in list(self._connections):
            if connection.account != account or connection.socket.closed:
                continue
            if connection.exchange == "binance":
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await connection.socket.send_json(event)
                    self.pushed += 1

    # --- Binance ------------------------------------------------------------------------------

    async def _listen_key(self, request: web.Request) -> web.Response:
        venue = _PATHS[request.path]
        account = self._market.by_key.get(request.headers.get("X-MBX-APIKEY", ""))
        if account is None or account.exchange != "binance":
            return _binance_error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        active = next(
            (k for k, v in self._keys.items() if v.account == account.name and v.venue is venue),
            None,
        )
        if request.method == "DELETE":
            if active is not None:
                del self._keys[active]
                await self._close_key(active)
            return web.json_response({})
        if request.method == "PUT" and active is None:
            return _binance_error(400, -1125, "This listenKey does not exist.")
        if request.method == "PUT":
            self.keepalives += 1
        if active is None:
            active = secrets.token_urlsafe(48)[:64]
            self._keys[active] = _ListenKey(account.name, venue, 0.0)
        self._keys[active].expires = time.monotonic() + self.listen_key_validity
        return web.json_response({"listenKey": active})

    async def _binance_usdm(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info.get("key") or request.query.get("listenKey", "")
        return await self._binance(request, key)

    async def _binance(self, request: web.Request, key: str) -> web.StreamResponse:
        if self.mode != "on":
            raise web.HTTPServiceUnavailable(text="websocket streams are down")
        entry = self._keys.get(key)
        if entry is None or entry.expires <= time.monotonic():
            # The venue refuses an unknown or lapsed key at the handshake.
            raise web.HTTPBadRequest(text="invalid listen key")
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        connection = _Private(socket, "binance", entry.account, entry.venue, key)
        await self._serve(connection, self._binance_request)
        return socket

    async def _binance_request(self, connection: _Private, data: dict[str, Any]) -> None:
        # A user-data stream takes no requests; answer a SUBSCRIBE as the venue does.
        if "id" in data:
            await connection.socket.send_json({"result": None, "id": data.get("id")})

    async def _push_binance(self, connection: _Private, sim: SimAccount, fill: str | None) -> None:
        assert connection.venue is not None
        now = self._server_ms()
        pools = [p for p in self._market.pools(sim) if p.venue is connection.venue]
        views = [view for pool in pools for view in pool.positions]
        if fill is not None:
            view = next((v for v in views if v.position.instrument.symbol == fill), None)
            await connection.socket.send_json(_order_trade_update(fill, view, now))
            self.pushed += 1
        balances = [
            {"a": asset, "wb": fmt(amount), "cw": fmt(amount), "bc": "0"}
            for asset, amount in sorted(sim.wallet.items())
        ]
        positions = []
        for view in views:
            position = view.position
            size = quantity(position.quantity, position.instrument.qty_step)
            signed = size if position.side is Side.LONG else f"-{size}"
            isolated = position.margin_mode is MarginMode.ISOLATED
            positions.append(
                {
                    "s": position.instrument.symbol,
                    "pa": signed,
                    "ep": fmt(position.entry_price),
                    "bep": fmt(position.entry_price),
                    "cr": "0",
                    "up": fmt(unrealized_pnl(position, view.mark_price)),
                    "mt": "isolated" if isolated else "cross",
                    "iw": fmt(position.isolated_margin or 0.0) if isolated else "0",
                    "ps": ("LONG" if position.side is Side.LONG else "SHORT")
                    if position.hedge
                    else "BOTH",
                    "ma": position.instrument.settle,
                }
            )
        if fill is not None and not any(p["s"] == fill for p in positions):
            positions.append(_flat(fill))
        await connection.socket.send_json(
            {
                "e": "ACCOUNT_UPDATE",
                "E": now,
                "T": now,
                "a": {"m": "ORDER" if fill else "DEPOSIT", "B": balances, "P": positions},
            }
        )
        self.pushed += 1

    async def _expire(self) -> int:
        now = time.monotonic()
        lapsed = [k for k, v in self._keys.items() if v.expires <= now]
        for key in lapsed:
            del self._keys[key]
            for connection in list(self._connections):
                if connection.listen_key == key and not connection.socket.closed:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await connection.socket.send_json(
                            {"e": "listenKeyExpired", "E": self._server_ms(), "listenKey": key}
                        )
            await self._close_key(key)
        return len(lapsed)

    async def _close_key(self, key: str) -> None:
        for connection in list(self._connections):
            if connection.listen_key == key:
                await connection.socket.close(code=1000, message=b"listen key expired")

    async def _expire_forever(self) -> None:
        while self._connections:
            await asyncio.sleep(1.0)
            await self._expire()

    # --- Bybit --------------------------------------------------------------------------------

    async def _bybit(self, request: web.Request) -> web.StreamResponse:
        if self.mode != "on":
            raise web.HTTPServiceUnavailable(text="websocket streams are down")
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        await self._serve(_Private(socket, "bybit"), self._bybit_request)
        return socket

    async def _bybit_request(self, connection: _Private, data: dict[str, Any]) -> None:
        op = data.get("op")
        reply: dict[str, Any] = {
            "success": True,
            "ret_msg": "",
            "op": op,
            "conn_id": connection.conn_id,
        }
        if "req_id" in data:
            reply["req_id"] = data["req_id"]
        args = [str(a) for a in data.get("args") or []]
        if op == "ping":
            await connection.socket.send_json(
                {
                    "req_id": data.get("req_id", ""),
                    "op": "pong",
                    "args": [str(self._server_ms())],
                    "conn_id": connection.conn_id,
                }
            )
        elif op == "auth":
            account = self._bybit_auth(args)
            if account is None:
                # Bybit echoes the request of a failed auth (clients tell it by `request.op`).
                await connection.socket.send_json(
                    reply
                    | {
                        "success": False,
                        "ret_msg": "error:USVC1111",
                        "request": {"op": "auth", "args": args},
                    }
                )
                return
            connection.account = account
            await connection.socket.send_json(reply)
        elif op == "subscribe":
            if connection.account is None:
                await connection.socket.send_json(
                    reply | {"success": False, "ret_msg": "Request not authorized"}
                )
                return
            connection.topics.update(args)
            await connection.socket.send_json(reply)
        elif op == "unsubscribe":
            connection.topics.difference_update(args)
            await connection.socket.send_json(reply)
        else:
            await connection.socket.send_json(
                reply | {"success": False, "ret_msg": f"error:invalid op {op}"}
            )

    def _bybit_auth(self, args: list[str]) -> str | None:
        if len(args) != 3:
            return None
        api_key, expires, signature = args
        account = self._market.by_key.get(api_key)
        if account is None or account.exchange != "bybit":
            return None
        try:
            if int(expires) <= self._server_ms():
                return None
        except ValueError:
            return None
        expected = hmac.new(
            account.spec.api_secret.encode(),
            f"GET/realtime{expires}".encode(),
            hashlib.sha256,
        ).hexdigest()
        return account.name if hmac.compare_digest(expected, signature) else None

    async def _push_bybit(self, connection: _Private, sim: SimAccount) -> None:
        now = self._server_ms()
        call = Call(self._market, {}, sim, now, self._market.elapsed())
        if "position" in connection.topics:
            rows = []
            for pool in self._market.pools(sim):
                if pool.venue.exchange != "bybit":
                    continue
                category = "inverse" if pool.venue.inverse else "linear"
                for view in pool.positions:
                    rows.append({"category": category, **bybit.position_row(call, view)})
            await connection.socket.send_json(
                {"id": uuid.uuid4().hex, "topic": "position", "creationTime": now, "data": rows}
            )
            self.pushed += 1
        if "wallet" in connection.topics:
            wallet = self._bybit_wallet(call)
            await connection.socket.send_json(
                {"id": uuid.uuid4().hex, "topic": "wallet", "creationTime": now, "data": wallet}
            )
            self.pushed += 1

    def _bybit_wallet(self, call: Call) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for account_type in ("UNIFIED", "CONTRACT"):
            try:
                answer = bybit.wallet_balance(
                    Call(
                        call.market,
                        {"accountType": account_type},
                        call.account,
                        call.server_ms,
                        call.elapsed,
                    )
                )
            except VenueReply:
                continue
            rows.extend(answer.get("list", []))
        return rows

    # --- both ---------------------------------------------------------------------------------

    async def _serve(
        self,
        connection: _Private,
        handle: Callable[[_Private, dict[str, Any]], Awaitable[None]],
    ) -> None:
        self._connections.add(connection)
        if self._expiry is None or self._expiry.done():
            self._expiry = asyncio.create_task(self._expire_forever(), name="sim-listen-keys")
        try:
            async for message in connection.socket:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                except json.JSONDecodeError:
                    continue
                if isinstance(data, dict):
                    await handle(connection, data)
        finally:
            self._connections.discard(connection)


def _binance_error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _flat(symbol: str) -> dict[str, Any]:
    """A closed position as ACCOUNT_UPDATE lists it."""
    return {
        "s": symbol,
        "pa": "0",
        "ep": "0.0",
        "bep": "0",
        "cr": "0",
        "up": "0",
        "mt": "cross",
        "iw": "0",
        "ps": "BOTH",
        "ma": "USDT",
    }


def _order_trade_update(symbol: str, view: Any, now: int) -> dict[str, Any]:
    """A filled market order (the simulator does not trade: the figures are the position's)."""
    price = fmt(view.mark_price) if view is not None else "0"
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now,
        "T": now,
        "o": {
            "s": symbol,
            "c": f"sim{now}",
            "S": "BUY",
            "o": "MARKET",
            "f": "GTC",
            "q": quantity(view.position.quantity, view.position.instrument.qty_step)
            if view is not None
            else "0",
            "p": "0",
            "ap": price,
            "sp": "0",
            "x": "TRADE",
            "X": "FILLED",
            "i": now,
            "l": "0",
            "z": "0",
            "L": price,
            "n": "0",
            "N": "USDT",
            "T": now,
            "t": now,
            "b": "0",
            "a": "0",
            "m": False,
            "R": False,
            "wt": "CONTRACT_PRICE",
            "ot": "MARKET",
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
        },
    }
