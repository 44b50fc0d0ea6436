"""A local HTTP endpoint (aiohttp on 127.0.0.1) that records JSON webhook deliveries.

Usage (inside a running event loop)::

    async with WebhookReceiver() as hook:
        hook.url               # http://127.0.0.1:PORT/hook
        hook.payloads          # every JSON body received, in order
        hook.fail_with = 503   # answer every request with this status until set back to None
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web


class WebhookReceiver:
    """Collects POSTed JSON bodies and their headers."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_with: int | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text="receiver told to fail")
        body = await request.json()
        self.payloads.append(body)
        self.headers.append(dict(request.headers))
        return web.json_response({"ok": True})

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        # Port 0 asked the OS for a free port; the runner knows which one it got.
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], within: float
    ) -> dict[str, Any]:
        """The first received payload matching `predicate`; AssertionError after `within` s."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for payload in self.payloads:
                if predicate(payload):
                    return payload
            await asyncio.sleep(0.1)
        raise AssertionError(f"no matching webhook payload in {within}s; got {self.payloads}")
