"""The dashboard in a real browser (headless Chromium over the DevTools protocol) against the
daemon as a subprocess on the simulator: the overview turns to a firing warning without a
reload, the history chart is drawn, a wrong password is refused, and a silence made on the page
keeps the next notification from the webhook."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from monitor.simulator.server import SimulatorServer
from monitor.web.auth import hash_password
from tests.daemon.e2e_support import (
    MARGIN_RATIO_ONLY,
    account_lines,
    btc_price_for_ratio,
    json_webhook_lines,
)
from tests.support.browser import chromium, chromium_binary
from tests.support.daemon import DaemonProcess
from tests.support.mosquitto import free_port
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e]

PASSWORD = "correct horse battery"
WRONG = "not-the-password-7731"
WARNING_PRICE = btc_price_for_ratio(2.4)
CRITICAL_PRICE = btc_price_for_ratio(1.35)


def _config(tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver, port: int) -> Path:
    info = sim.accounts["main"]
    lines = [
        f"state_dir = {json.dumps(str(tmp_path / 'state'))}",
        "[streams]",
        "enabled = false",
        "[web]",
        f'listen = "127.0.0.1:{port}"',
        f'password_hash = "{hash_password(PASSWORD)}"',
        *json_webhook_lines(hook.url),
        *MARGIN_RATIO_ONLY,
        *account_lines("main", info.api_key, info.api_secret, sim.base_url),
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_the_dashboard_shows_alerts_live_and_a_silence_made_there_mutes_the_webhook(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver
) -> None:
    chromium_binary()  # skip (fail under CI) before starting anything
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = DaemonProcess(_config(tmp_path, sim, hook, port), tmp_path)
    await asyncio.to_thread(daemon.start)
    try:
        async with chromium() as page:
            # Loaded while all is well: the warning must arrive without a reload.
            await page.goto(f"{base}/")
            await page.wait_for("!!document.querySelector('tr[data-account=main]')", 10)
            assert "none" in await page.evaluate(
                "document.querySelector('tr[data-account=main] .firing').innerText"
            )
            sim.set_price("BTC", WARNING_PRICE)
            await page.wait_for(
                "document.querySelector('tr[data-account=main] .firing').innerText"
                ".includes('margin_ratio (warning)')",
                20,
            )
            await hook.wait_for(lambda p: p.get("severity") == "warning", 10)

            # The API says the same, for scripts.
            status, body = await asyncio.to_thread(_get, f"{base}/api/accounts")
            assert status == 200
            (main,) = json.loads(body)
            assert main["name"] == "main"
            assert {"rule": "margin_ratio", "severity": "warning"} in main["firing"]
            assert 1.0 < main["margin_ratio"] < 3.0
            assert main["exchange_margin_ratio"] == pytest.approx(1 / main["margin_ratio"])
            status, body = await asyncio.to_thread(_get, f"{base}/api/alerts?since=banana")
            assert status == 400
            assert "since" in json.loads(body)["error"]

            # The account page draws its margin-ratio history with the alert levels.
            await page.goto(f"{base}/accounts/main?since=15m")
            # Points drawn: polyline vertices plus lone dots (a point with gaps on both sides).
            points = await page.wait_for(
                "Array.from(document.querySelectorAll('svg.chart polyline'))"
                ".map(p => p.getAttribute('points').split(' ').length)"
                ".reduce((a, b) => a + b, 0)"
                " + document.querySelectorAll('svg.chart circle').length",
                10,
            )
            assert points >= 2
            assert await page.evaluate("document.querySelectorAll('svg.chart line').length") >= 2

            # A wrong password is refused, with 401, and never logged.
            await page.goto(f"{base}/login?next=/accounts/main")
            await page.evaluate(
                f"document.querySelector('input[name=password]').value = {json.dumps(WRONG)};"
                "document.querySelector('form.login').submit()"
            )
            await page.wait_for("document.body.innerText.includes('Wrong password.')", 10)
            status = await page.evaluate(
                "fetch('/login', {method: 'POST', body: new URLSearchParams("
                f"{{password: {json.dumps(WRONG)}}})}}).then(r => r.status)"
            )
            assert status == 401
            assert "dashboard login refused" in daemon.log()
            assert WRONG not in daemon.log()

            # Logged in, silence the account from its page.
            await page.evaluate(
                f"document.querySelector('input[name=password]').value = {json.dumps(PASSWORD)};"
                "document.querySelector('form.login').submit()"
            )
            await page.wait_for("!!document.querySelector('form.silence-form')", 10)
            await page.evaluate(
                "document.querySelector('form.silence-form input[name=reason]').value = 'test';"
                "document.querySelector('form.silence-form').submit()"
            )
            await page.wait_for("document.body.innerText.includes('silenced until')", 10)
            # A form without the session's CSRF token is refused even with the cookie.
            forged = await page.evaluate(
                "fetch('/silences', {method: 'POST', body: new URLSearchParams("
                "{account: 'main', for: '1h', csrf: 'forged'})}).then(r => r.status)"
            )
            assert forged == 403

            # The escalation to critical is recorded but not sent.
            sim.set_price("BTC", CRITICAL_PRICE)
            await page.goto(f"{base}/alerts")
            await page.wait_for(
                "!!document.querySelector('tr.critical') && "
                "document.querySelector('tr.critical').innerText.includes('silence')",
                20,
            )
        # Long enough for a delivery that should not happen (the webhook answers in ms).
        await asyncio.sleep(1)
        assert [p.get("severity") for p in hook.payloads] == ["warning"]
    finally:
        await asyncio.to_thread(daemon.terminate)
