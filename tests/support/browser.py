"""Headless Chromium (the Debian package) driven over the DevTools protocol with aiohttp's
websocket client: no browser download, no extra client library.

Chromium prints its DevTools websocket address on stderr; one page target is created and
attached with a flat session, and every command names that session.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.tools import tool_missing

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--window-size=1200,900",
)


def chromium_binary() -> str:
    """The chromium executable; skips (fails under CI) when the package is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        tool_missing("chromium is not installed (Debian package `chromium`; .ci/run installs it)")
    return found


class Page:
    """One browser tab."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: str) -> None:
        self._ws = ws
        self._session = session
        self._ids = itertools.count(1000)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a DevTools command to this tab and return its result."""
        return await _call(self._ws, self._ids, method, params, self._session)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str, within: float = 10.0) -> None:
        """Load `url` and wait until its document is complete."""
        await self.send("Page.navigate", url=url)
        await self.wait_for(
            "document.readyState === 'complete' && location.href !== 'about:blank'", within
        )

    async def wait_for(self, expression: str, within: float) -> Any:
        """Poll a JavaScript expression until it is truthy; AssertionError with the page text."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            with contextlib.suppress(AssertionError):
                value = await self.evaluate(expression)
                if value:
                    return value
            await asyncio.sleep(0.2)
        text = await self.evaluate("document.body ? document.body.innerText : ''")
        raise AssertionError(f"timed out after {within}s waiting for {expression}\npage:\n{text}")

    async def screenshot(self, path: Path) -> None:
        """Save the whole page as PNG."""
        # The previous page's size would otherwise stay as the floor of this one's.
        await self.send("Emulation.clearDeviceMetricsOverride")
        height = await self.evaluate("document.body.scrollHeight + 16")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=1200,
            height=int(height),
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


async def _call(
    ws: aiohttp.ClientWebSocketResponse,
    ids: itertools.count[int],
    method: str,
    params: dict[str, Any],
    session: str | None = None,
) -> dict[str, Any]:
    message_id = next(ids)
    message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
    if session is not None:
        message["sessionId"] = session
    await ws.send_str(json.dumps(message))
    # Events arrive between answers; commands are sent one at a time, so skip to ours.
    while True:
        reply = await asyncio.wait_for(ws.receive_json(), 30)
        if reply.get("id") == message_id:
            if "error" in reply:
                raise AssertionError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply.get("result", {})
            return result


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Page]:
    """A fresh headless Chromium (own profile directory) with one tab, closed afterwards."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="pm-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        drain: asyncio.Task[None] | None = None
        try:
            address = await asyncio.wait_for(_devtools_address(process), 30)
            # Keep reading stderr so chromium never blocks on a full pipe.
            drain = asyncio.create_task(_drain(process))
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(address, max_msg_size=0) as ws,
            ):
                ids = itertools.count(1)
                target = await _call(ws, ids, "Target.createTarget", {"url": "about:blank"})
                attached = await _call(
                    ws,
                    ids,
                    "Target.attachToTarget",
                    {"targetId": target["targetId"], "flatten": True},
                )
                page = Page(ws, attached["sessionId"])
                await page.send("Page.enable")
                yield page
        finally:
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
            if drain is not None:
                drain.cancel()


async def _devtools_address(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    seen = []
    while line := (await process.stderr.readline()).decode(errors="replace"):
        seen.append(line)
        if line.startswith("DevTools listening on "):
            return line.removeprefix("DevTools listening on ").strip()
    raise AssertionError("chromium exited before opening DevTools:\n" + "".join(seen[-20:]))


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.readline():
        pass
