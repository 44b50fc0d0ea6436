"""Screenshots of the dashboard for the README, taken once by hand (not in every test run):

    .venv/bin/python -m tests.support.screenshots [--out docs/screenshots] [--wait 30]

Runs the demo's simulator and the real daemon in this process with the dashboard on a free
loopback port, waits until the demo's warning fires, logs in and saves each page as PNG from
headless Chromium (Page.captureScreenshot).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import tempfile
import urllib.request
from pathlib import Path

from monitor.cli.demo import demo_config
from monitor.daemon import Daemon, DaemonOptions
from monitor.simulator.server import SimulatorServer
from monitor.web.auth import hash_password
from tests.support.browser import chromium

PASSWORD = "screenshot-password"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _firing(base: str) -> bool:
    with urllib.request.urlopen(f"{base}/api/accounts", timeout=5) as response:
        return any(
            f["rule"] == "margin_ratio" for a in json.loads(response.read()) for f in a["firing"]
        )


async def take(out: Path, wait: float) -> list[Path]:
    """Run the demo until its margin-ratio warning fires (at most `wait` s), save the pages."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    saved = []
    with tempfile.TemporaryDirectory(prefix="pm-screenshots-") as directory:
        state = Path(directory)
        async with SimulatorServer("demo", port=0) as sim:
            config = state / "config.toml"
            text = demo_config(sim.base_url, sim.accounts, state, port)
            await asyncio.to_thread(
                config.write_text,
                # The demo's [web] section, with a password so that the pages show a login.
                text.replace(
                    f'listen = "127.0.0.1:{port}"\n',
                    f'listen = "127.0.0.1:{port}"\npassword_hash = "{hash_password(PASSWORD)}"\n',
                ),
            )
            daemon = Daemon(DaemonOptions(config_path=config, stop_grace=3))
            running = asyncio.create_task(daemon.run())
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + wait
                while loop.time() < deadline:
                    await asyncio.sleep(1)
                    if running.done():
                        await running  # the daemon's error, if it failed to start
                        raise RuntimeError("the daemon stopped early")
                    with contextlib.suppress(OSError):
                        if await asyncio.to_thread(_firing, base):
                            break
                async with chromium() as page:
                    await page.goto(f"{base}/login?next=/")
                    await page.evaluate(
                        f"document.querySelector('input[name=password]').value = '{PASSWORD}';"
                        "document.querySelector('form.login').submit()"
                    )
                    await page.wait_for("location.pathname === '/'", 10)
                    pages = {
                        "overview": "/",
                        "account": "/accounts/demo-binance?since=15m&shock=all%3D-1%25",
                        "alerts": "/alerts",
                    }
                    for name, path in pages.items():
                        await page.goto(base + path)
                        target = out / f"{name}.png"
                        await page.screenshot(target)
                        saved.append(target)
            finally:
                daemon.stop()
                await running
    return saved


def main() -> None:
    """Command line: where to save, how long to wait for the warning."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--wait", type=float, default=40.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(take(args.out, args.wait)):
        print(path)


if __name__ == "__main__":
    main()
