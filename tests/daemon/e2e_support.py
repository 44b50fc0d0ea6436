"""Shared pieces of the end-to-end daemon tests: a small scenario, its config, readers of the
SQLite file, and an MQTT recorder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from monitor.domain.margin import assess
from monitor.domain.model import AccountState, MarginMode, Position, Side, Tier, Venue
from monitor.service import CycleReport
from tests.support.mosquitto import Mosquitto

BTC_ENTRY = 60_000.0
ETH_MARK = 3_000.0
WALLET = 1_500.0
BTC_QUANTITY = 0.5
ETH_QUANTITY = 5.0
MMR = 0.005

# One Binance USDⓈ-M cross account with two longs; the test pins the BTC price to move its
# margin ratio. "spare" is only watched after a reload adds it to the configuration.
SCENARIO: dict[str, Any] = {
    "name": "e2e",
    "seed": 7,
    "tick": "1s",
    "feeds": {"BTC": {"price": BTC_ENTRY}, "ETH": {"price": ETH_MARK}},
    "instruments": [
        {
            "venue": "binance-usdm",
            "symbol": "BTCUSDT",
            "tiers": [{"mmr": "0.5%", "max_leverage": 100}],
        },
        {
            "venue": "binance-usdm",
            "symbol": "ETHUSDT",
            "tiers": [{"mmr": "0.5%", "max_leverage": 100}],
        },
    ],
    "accounts": {
        "main": {
            "exchange": "binance",
            "wallet": {"USDT": WALLET},
            "positions": [
                {
                    "symbol": "BTCUSDT",
                    "side": "long",
                    "quantity": BTC_QUANTITY,
                    "entry_price": BTC_ENTRY,
                    "leverage": 20,
                },
                {
                    "symbol": "ETHUSDT",
                    "side": "long",
                    "quantity": ETH_QUANTITY,
                    "entry_price": ETH_MARK,
                    "leverage": 20,
                },
            ],
        },
        "spare": {
            "exchange": "binance",
            "wallet": {"USDT": 10_000},
            "positions": [
                {
                    "symbol": "ETHUSDT",
                    "side": "long",
                    "quantity": 1,
                    "entry_price": ETH_MARK,
                    "leverage": 5,
                },
            ],
        },
    },
}


def margin_ratio_at(btc: float) -> float:
    """The main account's margin ratio (equity / MM) with BTC at `btc`, from the real engine."""
    tiers = (Tier(floor=0.0, cap=None, mmr=MMR),)
    positions = (
        Position("BTCUSDT", Side.LONG, MarginMode.CROSS, BTC_QUANTITY, BTC_ENTRY, btc, tiers),
        Position("ETHUSDT", Side.LONG, MarginMode.CROSS, ETH_QUANTITY, ETH_MARK, ETH_MARK, tiers),
    )
    ratio = assess(AccountState(Venue.BINANCE_USDM, WALLET, positions)).margin_ratio
    assert ratio is not None
    return ratio


def btc_price_for_ratio(target: float) -> float:
    """The BTC price that puts the main account at margin ratio `target` (bisection: the ratio
    rises with the BTC price for these longs)."""
    low, high = 1_000.0, BTC_ENTRY
    assert margin_ratio_at(low) < target < margin_ratio_at(high)
    for _ in range(60):
        middle = (low + high) / 2
        if margin_ratio_at(middle) < target:
            low = middle
        else:
            high = middle
    return round((low + high) / 2, 1)


@dataclass
class Endpoints:
    """Where the daemon under test sends things."""

    base_url: str
    keys: dict[str, tuple[str, str]]
    mqtt_port: int
    webhook_url: str


# Only the margin-ratio rule, warning below 300 % after 1 s: the e2e tests move one price across it.
MARGIN_RATIO_ONLY = [
    "[alerts.margin_ratio]",
    'warning_below = "300%"',
    'for = "1s"',
    "[alerts.liquidation_distance]",
    "enabled = false",
    "[alerts.account_move]",
    "enabled = false",
]


def account_lines(
    name: str, key: str, secret: str, base_url: str, *, poll: str = "1s"
) -> list[str]:
    """A Binance USDⓈ-M account of the simulator at `base_url`, as config TOML lines."""
    return [
        f"[accounts.{name}]",
        'venue = "binance-usdm"',
        f"api_key = {json.dumps(key)}",
        f"api_secret = {json.dumps(secret)}",
        f'poll_interval = "{poll}"',
        f"base_url = {json.dumps(base_url)}",
    ]


def json_webhook_lines(url: str, *, retry_initial: str = "1s", retry_max: str = "2s") -> list[str]:
    """The JSON webhook sink `hook` posting to `url`, with the delivery retry it should use."""
    return [
        "[notify.webhooks.hook]",
        'kind = "json"',
        f"url = {json.dumps(url)}",
        "[notify.delivery]",
        f'retry_initial = "{retry_initial}"',
        f'retry_max = "{retry_max}"',
    ]


def write_config(
    path: Path,
    state_dir: Path,
    endpoints: Endpoints,
    *,
    accounts: tuple[str, ...] = ("main",),
    warning_below: str = "300%",
    metrics_port: int | None = None,
) -> Path:
    """A daemon config: 1 s polls, short debounce, MQTT + JSON webhook sinks. Mark streams are
    off: these tests count poll cycles and their snapshots (live marks: test_live_marks.py)."""
    lines = [
        f"state_dir = {json.dumps(str(state_dir))}",
        "[streams]",
        "enabled = false",
        *(["[metrics]", f'listen = "127.0.0.1:{metrics_port}"'] if metrics_port else []),
        "[notify.mqtt]",
        'host = "127.0.0.1"',
        f"port = {endpoints.mqtt_port}",
        *json_webhook_lines(endpoints.webhook_url),
        "[alerts.margin_ratio]",
        f"warning_below = {json.dumps(warning_below)}",
        'for = "1s"',
        "[alerts.liquidation_distance]",
        "enabled = false",
        "[alerts.account_move]",
        "enabled = false",
    ]
    for name in accounts:
        lines += account_lines(name, *endpoints.keys[name], endpoints.base_url)
    path.write_text("\n".join(lines) + "\n")
    return path


class Recorder:
    """A cycle observer that keeps every report, in order."""

    def __init__(self) -> None:
        self.reports: list[CycleReport] = []

    def cycle_finished(self, report: CycleReport) -> None:
        self.reports.append(report)


def database(state_dir: Path) -> Path:
    """The daemon's SQLite file."""
    return state_dir / "monitor.db"


def snapshot_counts(state_dir: Path) -> dict[str, int]:
    """Stored snapshots per account name."""
    path = database(state_dir)
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        try:
            rows = conn.execute(
                "SELECT a.name, count(s.id) FROM account a "
                "LEFT JOIN account_snapshot s ON s.account_id = a.id GROUP BY a.name"
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
    return {str(name): int(count) for name, count in rows}


def half_written_snapshots(state_dir: Path, positions: int) -> int:
    """Account snapshots that do not have exactly `positions` position rows (must be 0), after
    SQLite's own integrity check passed."""
    with contextlib.closing(sqlite3.connect(database(state_dir), timeout=10)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        row = conn.execute(
            "SELECT count(*) FROM (SELECT s.id FROM account_snapshot s "
            "LEFT JOIN position_snapshot p ON p.snapshot_id = s.id "
            "JOIN account a ON a.id = s.account_id WHERE a.name = 'main' "
            "GROUP BY s.id HAVING count(p.snapshot_id) != ?)",
            (positions,),
        ).fetchone()
    return int(row[0])


def scrape_metrics(port: int) -> str:
    """What Prometheus reads from the metrics endpoint on 127.0.0.1:`port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


@dataclass(frozen=True)
class MqttMessage:
    topic: str
    payload: bytes
    retain: bool


class MqttRecorder:
    """Subscribes to everything the daemon publishes and records it, for the whole test."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.messages: list[MqttMessage] = []
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.subscribe("portfolio_monitor/#", qos=1)
            self._ready.set()
            async for message in client.messages:
                self.messages.append(
                    MqttMessage(str(message.topic), message.payload, bool(message.retain))
                )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[MqttRecorder]:
        """Record while the block runs."""
        task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task

    def alerts(self, account: str) -> list[dict[str, Any]]:
        """Alert events published for `account`."""
        topic = f"portfolio_monitor/{account}/alert"
        return [json.loads(m.payload) for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> MqttMessage | None:
        """The newest message on `topic`."""
        found = [m for m in self.messages if m.topic == topic]
        return found[-1] if found else None
