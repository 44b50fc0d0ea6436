"""The control API under `/_sim/`, for a simulator running in another process (`portfolio-monitor
simulate`): the same levers tests pull in-process, as JSON over HTTP.

    POST   /_sim/faults          {"kind": "rate_limit", "account": "a", "count": 1, ...} -> {"id": 3}
    DELETE /_sim/faults          lift every fault
    PUT    /_sim/prices/{feed}   {"price": 50000} pins a feed, {"price": null} releases it
    POST   /_sim/advance         {"seconds": 30} moves a manual clock
    PUT    /_sim/streams         {"mode": "off"} drops the websockets ("silent": no pushes, "on")
    PUT    /_sim/private-streams {"mode": "off"} drops the private websockets only ("on")
    POST   /_sim/listen-keys/expire  every Binance listenKey lapses now (listenKeyExpired)
    PUT    /_sim/accounts/{name}/positions/{symbol}  {"quantity": 0.2} a fill (0 closes)
    POST   /_sim/accounts/{name}/transfers  {"asset": "USDT", "amount": -100} a transfer
    GET    /_sim/state           clock, liquidations, faults in force
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, TypeGuard

from aiohttp import web

from monitor.domain.errors import InvalidInput

if TYPE_CHECKING:
    from monitor.simulator.server import SimulatorServer


def add_control_routes(app: web.Application, server: SimulatorServer) -> None:
    """Register the `/_sim/` routes (before the venue catch-all)."""

    async def body(request: web.Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.text() or "{}")
        except json.JSONDecodeError as exc:
            raise _bad(f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise _bad("body must be a JSON object")
        return data

    async def add_fault(request: web.Request) -> web.Response:
        data = await body(request)
        kind = data.pop("kind", None)
        if not isinstance(kind, str):
            raise _bad("fault.kind: missing")
        try:
            fault = server.inject_fault(kind, **data)
        except InvalidInput as exc:
            raise _bad(str(exc)) from None
        except TypeError as exc:
            raise _bad(f"fault: {exc}") from None
        return web.json_response({"id": fault.id})

    async def clear_faults(_request: web.Request) -> web.Response:
        server.clear_faults()
        return web.json_response({})

    async def set_price(request: web.Request) -> web.Response:
        feed = request.match_info["feed"]
        price = (await body(request)).get("price")
        if price is not None and (not _finite(price) or price <= 0):
            raise _bad("price: must be a positive number or null")
        try:
            server.set_price(feed, None if price is None else float(price))
        except KeyError:
            raise _bad(f"feed: unknown feed {feed!r}") from None
        return web.json_response({})

    async def advance(request: web.Request) -> web.Response:
        seconds = (await body(request)).get("seconds")
        if not _finite(seconds) or seconds < 0:
            raise _bad("seconds: must be a number >= 0")
        try:
            server.advance(float(seconds))
        except TypeError as exc:
            raise web.HTTPConflict(
                text=json.dumps({"error": str(exc)}), content_type="application/json"
            ) from None
        return web.json_response({"now": server.clock.now().isoformat()})

    async def set_streams(request: web.Request) -> web.Response:
        mode = (await body(request)).get("mode")
        try:
            await server.streams.set_mode(str(mode))
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return web.json_response({"mode": server.streams.mode})

    async def set_private_streams(request: web.Request) -> web.Response:
        mode = (await body(request)).get("mode")
        try:
            await server.private.set_mode(str(mode))
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return web.json_response({"mode": server.private.mode})

    async def expire_listen_keys(_request: web.Request) -> web.Response:
        return web.json_response({"expired": await server.private.expire_listen_keys()})

    def account_of(request: web.Request) -> str:
        name = request.match_info["name"]
        if name not in server.market.accounts:
            raise _bad(f"account: unknown account {name!r}")
        return name

    async def fill(request: web.Request) -> web.Response:
        name = account_of(request)
        quantity = (await body(request)).get("quantity")
        if not _finite(quantity) or quantity < 0:
            raise _bad("quantity: must be a number >= 0")
        symbol = request.match_info["symbol"]
        try:
            await server.fill(name, symbol, float(quantity))
        except KeyError:
            raise _bad(f"symbol: account {name!r} holds no position in {symbol!r}") from None
        return web.json_response({})

    async def transfer(request: web.Request) -> web.Response:
        name = account_of(request)
        data = await body(request)
        asset, amount = data.get("asset"), data.get("amount")
        if not isinstance(asset, str) or not asset:
            raise _bad("asset: missing")
        if not _finite(amount):
            raise _bad("amount: must be a number")
        await server.transfer(name, asset, float(amount))
        return web.json_response({})

    async def state(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "now": server.clock.now().isoformat(),
                "elapsed": server.market.elapsed(),
                "liquidations": [
                    {
                        "account": event.account,
                        "symbol": event.symbol,
                        "side": event.side.value,
                        "margin_mode": event.margin_mode.value,
                        "quantity": event.quantity,
                        "mark_price": event.mark_price,
                        "liquidation_price": event.liquidation_price,
                        "at": event.at.isoformat(),
                    }
                    for event in server.liquidations
                ],
                "streams": {
                    "mode": server.streams.mode,
                    "connections": server.streams.connections,
                    "pushed": server.streams.pushed,
                },
                "private_streams": {
                    "mode": server.private.mode,
                    "connections": server.private.connections,
                    "pushed": server.private.pushed,
                },
                "faults": [
                    {
                        "id": fault.id,
                        "kind": fault.spec.kind,
                        "account": fault.spec.account,
                        "hits": fault.hits,
                    }
                    for fault in server.faults.active
                ],
            }
        )

    app.router.add_post("/_sim/faults", add_fault)
    app.router.add_delete("/_sim/faults", clear_faults)
    app.router.add_put("/_sim/prices/{feed}", set_price)
    app.router.add_post("/_sim/advance", advance)
    app.router.add_put("/_sim/streams", set_streams)
    app.router.add_put("/_sim/private-streams", set_private_streams)
    app.router.add_post("/_sim/listen-keys/expire", expire_listen_keys)
    app.router.add_put("/_sim/accounts/{name}/positions/{symbol}", fill)
    app.router.add_post("/_sim/accounts/{name}/transfers", transfer)
    app.router.add_get("/_sim/state", state)


def _finite(value: Any) -> TypeGuard[float]:
    # Python's json accepts NaN and Infinity (a NaN price poisons every mark), and true is an int.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
