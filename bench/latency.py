"""Move-to-webhook latency: how long after a price move the emergency alert reaches a JSON webhook,
with REST polling only and with live marks, in the same run.

    .venv/bin/python bench/latency.py [--moves 20] [--poll 10s] [--live-only]

The simulator runs in this process (its control is the same as the `/_sim/` API); the daemon is
`portfolio-monitor run` as a subprocess with the shipped alert rules, one Binance USDⓈ-M account
and a JSON webhook. Each move pins the BTC price so the margin ratio falls to 110 % (below the
120 % emergency level), waits for the emergency alert at the webhook, then pins it back and
waits for the resolved notice. The moves start at random offsets within a poll interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import BTC_ENTRY, SCENARIO, btc_price_for_ratio

BINARY = Path(sys.executable).with_name("portfolio-monitor")


class Hook:
    """A JSON webhook receiver noting when each payload arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.received.append((time.monotonic(), await request.json()))
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/hook", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait(self, event: str, since: float, within: float) -> float:
        """Seconds from `since` to the first margin-ratio `event` payload after it."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for at, payload in self.received:
                if (
                    at >= since
                    and payload.get("rule") == "margin_ratio"
                    and payload.get("event") == event
                ):
                    return at - since
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {event} alert within {within}s")


def _config(directory: Path, sim: SimulatorServer, hook: Hook, poll: str, live: bool) -> Path:
    info = sim.accounts["main"]
    path = directory / "config.toml"
    path.write_text(
        "\n".join(
            [
                f"state_dir = {json.dumps(str(directory / 'state'))}",
                "[notify.webhooks.hook]",
                'kind = "json"',
                f"url = {json.dumps(hook.url)}",
                "[streams]",
                f"enabled = {'true' if live else 'false'}",
                "[accounts.main]",
                'venue = "binance-usdm"',
                f"api_key = {json.dumps(info.api_key)}",
                f"api_secret = {json.dumps(info.api_secret)}",
                f"poll_interval = {json.dumps(poll)}",
                f"base_url = {json.dumps(sim.base_url)}",
            ]
        )
        + "\n"
    )
    return path


async def measure(moves: int, poll: str, poll_seconds: float, live: bool) -> list[float]:
    """Latencies of `moves` emergency alerts after a price move, in seconds."""
    rng = random.Random(7)
    hook = Hook()
    await hook.start()
    latencies = []
    with tempfile.TemporaryDirectory() as tmp:
        async with SimulatorServer(SCENARIO, port=0) as sim:
            config = _config(Path(tmp), sim, hook, poll, live)
            log = (Path(tmp) / "daemon.log").open("wb")
            daemon = await asyncio.create_subprocess_exec(
                str(BINARY), "run", "--config", str(config), stdout=log, stderr=log
            )
            try:
                # The first fetch, and (live) the stream, before the first move.
                await asyncio.sleep(poll_seconds + 3 if not live else 4)
                crash = btc_price_for_ratio(1.1)
                for _ in range(moves):
                    await asyncio.sleep(rng.uniform(0, poll_seconds))
                    moved = time.monotonic()
                    sim.set_price("BTC", crash)
                    latencies.append(await hook.wait("firing", moved, 3 * poll_seconds + 10))
                    back = time.monotonic()
                    sim.set_price("BTC", BTC_ENTRY)
                    await hook.wait("resolved", back, 3 * poll_seconds + 10)
            finally:
                daemon.terminate()
                await asyncio.wait_for(daemon.wait(), 30)
                log.close()
    await hook.stop()
    return latencies


def _summary(name: str, latencies: list[float]) -> str:
    return (
        f"{name:<14} moves {len(latencies):3d}  median {statistics.median(latencies):5.2f} s  "
        f"max {max(latencies):5.2f} s  min {min(latencies):5.2f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--poll", default="10s", help="poll_interval of the account")
    parser.add_argument("--live-only", action="store_true", help="skip the polling baseline")
    args = parser.parse_args()
    poll_seconds = float(args.poll.removesuffix("s"))
    if not args.live_only:
        polling = await measure(args.moves, args.poll, poll_seconds, live=False)
        print(_summary(f"polling {args.poll}", polling), flush=True)
    live = await measure(args.moves, args.poll, poll_seconds, live=True)
    print(_summary("live marks", live), flush=True)
    if args.live_only:
        return
    print(
        f"live marks: median {statistics.median(polling) / statistics.median(live):.1f}x "
        f"faster, max {max(polling) / max(live):.1f}x faster than polling every {args.poll}"
    )


if __name__ == "__main__":
    asyncio.run(main())
