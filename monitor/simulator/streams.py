"""The websocket side: Binance USDⓈ-M / COIN-M mark price streams and Bybit v5 public tickers,
on the same aiohttp server as the REST paths (the URL contract: a venue's production websocket
URL with scheme, host and port replaced by `ws://HOST:PORT`).

Binance (market streams, `/market/ws/<n>` for USDⓈ-M as ccxt.pro builds it, `/ws/<n>` for
COIN-M): `{"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1}` answered with
`{"result": null, "id": 1}`; `<symbol>@markPrice[@1s]` pushes one `markPriceUpdate` event,
`!markPrice@arr[@1s]` an array of them for every listed symbol.

Bybit (`/v5/public/linear`, `/v5/public/inverse`): `{"op": "subscribe", "args":
["tickers.BTCUSDT"]}` answered with `{"success": true, "op": "subscribe", ...}`, then a
`snapshot` of the ticker and `delta` messages carrying the changed fields; `{"op": "ping"}` is
answered with `ret_msg` "pong".

Marks are pushed every second and at once when a price is pinned. `mode` makes the side fail the
way venues do: "off" drops every connection and refuses new ones, "silent" keeps the connections
open but sends nothing (a stream that hangs without closing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from monitor.domain.model import Venue
from monitor.simulator import binance, bybit
from monitor.simulator.protocol import Call

if TYPE_CHECKING:
    from monitor.simulator.market import Market
    from monitor.simulator.scenario import Instrument

MODES = ("on", "off", "silent")
# How often marks are pushed when nothing changes: Binance's `@1s` streams and Bybit's tickers.
PUSH_SECONDS = 1.0


@dataclass(eq=False)
class _Connection:
    """One open websocket and what it subscribed to."""

    socket: web.WebSocketResponse
    venue: Venue
    topics: set[str] = field(default_factory=set)
    # Bybit: the last fields sent per symbol, so a delta carries only what changed.
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex[:20])


class StreamHub:
    """Every websocket connection of the simulator, and the task pushing marks to them."""

    def __init__(self, market: Market, server_ms: Callable[[], int]) -> None:
        self._market = market
        self._server_ms = server_ms
        self._connections: set[_Connection] = set()
        self._changed = asyncio.Event()
        self._pusher: asyncio.Task[None] | None = None
        self.mode = "on"
        # Messages pushed so far (tests read it to see the stream is live).
        self.pushed = 0

    @property
    def connections(self) -> int:
        """Open websocket connections."""
        return len(self._connections)

    def add_routes(self, app: web.Application) -> None:
        """Register the websocket paths (before the REST catch-all)."""
        app.router.add_get("/market/ws", self._binance_usdm)
        app.router.add_get("/market/ws/{stream}", self._binance_usdm)
        app.router.add_get("/public/ws/{stream}", self._binance_usdm)
        app.router.add_get("/ws", self.binance_coinm)
        app.router.add_get("/ws/{stream}", self.binance_coinm)
        app.router.add_get("/v5/public/linear", self._bybit_linear)
        app.router.add_get("/v5/public/inverse", self._bybit_inverse)

    def price_changed(self) -> None:
        """A price was pinned: push now rather than at the next second."""
        self._changed.set()

    async def set_mode(self, mode: str) -> None:
        """ "on", "off" (drop every connection, refuse new ones) or "silent" (push nothing)."""
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}")
        self.mode = mode
        if mode == "off":
            for connection in list(self._connections):
                await connection.socket.close(code=1001, message=b"going away")

    async def close(self) -> None:
        """Close every connection and stop pushing."""
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        for connection in list(self._connections):
            await connection.socket.close(code=1001, message=b"server shutdown")

    async def _binance_usdm(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Venue.BINANCE_USDM)

    async def binance_coinm(self, request: web.Request) -> web.StreamResponse:
        """A COIN-M market stream (`/ws/<n>`; the private side serves `/ws/<listenKey>`)."""
        return await self._serve(request, Venue.BINANCE_COINM)

    async def _bybit_linear(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Venue.BYBIT_LINEAR)

    async def _bybit_inverse(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Venue.BYBIT_INVERSE)

    async def _serve(self, request: web.Request, venue: Venue) -> web.StreamResponse:
        if self.mode == "off":
            raise web.HTTPServiceUnavailable(text="websocket streams are down")
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        connection = _Connection(socket, venue)
        self._connections.add(connection)
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_forever(), name="sim-streams")
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                except json.JSONDecodeError:
                    continue
                if isinstance(data, dict):
                    await self._request(connection, data)
        finally:
            self._connections.discard(connection)
        return socket

    async def _request(self, connection: _Connection, data: dict[str, Any]) -> None:
        if connection.venue.exchange == "binance":
            method = data.get("method")
            params = [str(p) for p in data.get("params") or []]
            if method == "SUBSCRIBE":
                connection.topics.update(params)
                await connection.socket.send_json({"result": None, "id": data.get("id")})
                if self.mode == "on":
                    await self._push(connection, only=set(params))
            elif method == "UNSUBSCRIBE":
                connection.topics.difference_update(params)
                await connection.socket.send_json({"result": None, "id": data.get("id")})
            elif method == "LIST_SUBSCRIPTIONS":
                await connection.socket.send_json(
                    {"result": sorted(connection.topics), "id": data.get("id")}
                )
            return
        op = data.get("op")
        reply = {"success": True, "ret_msg": "", "conn_id": connection.conn_id, "op": op}
        if "req_id" in data:
            reply["req_id"] = data["req_id"]
        if op == "ping":
            if self.mode == "on":
                await connection.socket.send_json(reply | {"ret_msg": "pong"})
            return
        args = [str(a) for a in data.get("args") or []]
        if op == "subscribe":
            known = {f"tickers.{i.symbol}" for i in self._market.instruments(connection.venue)}
            unknown = [a for a in args if a not in known]
            if unknown:
                await connection.socket.send_json(
                    reply | {"success": False, "ret_msg": f"Invalid symbol :[{unknown[0]}]"}
                )
                return
            connection.topics.update(args)
            await connection.socket.send_json(reply)
            if self.mode == "on":
                await self._push(connection, only=set(args))
        elif op == "unsubscribe":
            connection.topics.difference_update(args)
            for arg in args:
                connection.sent.pop(arg.removeprefix("tickers."), None)
            await connection.socket.send_json(reply)

    async def _push_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while self._connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PUSH_SECONDS):
                    await self._changed.wait()
            self._changed.clear()
            if self.mode != "on":
                continue
            started = loop.time()
            for connection in list(self._connections):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self._push(connection)
            # A slow round must not turn into a busy loop.
            await asyncio.sleep(max(0.0, 0.05 - (loop.time() - started)))

    async def _push(self, connection: _Connection, only: set[str] | None = None) -> None:
        topics = sorted(only if only is not None else connection.topics)
        if not topics or connection.socket.closed:
            return
        elapsed = self._market.elapsed()
        if connection.venue.exchange == "binance":
            for topic in topics:
                payload = self._binance_payload(connection.venue, topic, elapsed)
                if payload is not None:
                    await connection.socket.send_json(payload)
                    self.pushed += 1
            return
        for topic in topics:
            symbol = topic.removeprefix("tickers.")
            row = self._bybit_row(connection.venue, symbol, elapsed)
            if row is None:
                continue
            previous = connection.sent.get(symbol)
            if previous is None:
                kind, data = "snapshot", row
            else:
                # Bybit: a field missing from a delta has not changed. The marks are always
                # sent (as a venue's ticks always carry some field), so a quiet market still
                # shows a live stream.
                changed = {k: v for k, v in row.items() if previous.get(k) != v}
                kind = "delta"
                data = {"symbol": symbol, "markPrice": row["markPrice"]} | changed
            connection.sent[symbol] = row
            await connection.socket.send_json(
                {
                    "topic": topic,
                    "type": kind,
                    "data": data,
                    "cs": self.pushed + 1,
                    "ts": self._server_ms(),
                }
            )
            self.pushed += 1

    def _call(self, params: dict[str, str], elapsed: float) -> Call:
        return Call(self._market, params, None, self._server_ms(), elapsed)

    def _binance_payload(self, venue: Venue, topic: str, elapsed: float) -> Any:
        instruments = self._market.instruments(venue)
        if topic.startswith("!markPrice@arr"):
            return [self._mark_event(i, elapsed) for i in instruments]
        name, _, rest = topic.partition("@")
        if not rest.startswith("markPrice"):
            return None
        instrument = next((i for i in instruments if i.symbol.lower() == name), None)
        return None if instrument is None else self._mark_event(instrument, elapsed)

    def _mark_event(self, instrument: Instrument, elapsed: float) -> dict[str, Any]:
        row = binance.premium_row(self._call({}, elapsed), instrument)
        perpetual = instrument.venue is Venue.BINANCE_USDM or instrument.symbol.endswith("_PERP")
        return {
            "e": "markPriceUpdate",
            "E": self._server_ms(),
            "s": instrument.symbol,
            "p": row["markPrice"],
            "i": row["indexPrice"],
            "P": row["estimatedSettlePrice"],
            "r": row["lastFundingRate"] if perpetual else "",
            "T": row["nextFundingTime"] if perpetual else 0,
        }

    def _bybit_row(self, venue: Venue, symbol: str, elapsed: float) -> dict[str, Any] | None:
        category = "inverse" if venue is Venue.BYBIT_INVERSE else "linear"
        rows = bybit.ticker_rows(self._call({"category": category, "symbol": symbol}, elapsed))
        return rows[0] if rows else None
