"""A small SQLite database for the command-line tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.storage.migrate import prepare_database
from tests.storage.factories import Event, snapshot

ACCOUNT = "binance-main-portfolio"


@pytest.fixture
async def db(tmp_path: Path) -> str:
    """A long account name, a firing alert with a long rule name, positions with big prices."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    now = datetime.now(UTC)
    store = await prepare_database(url)
    try:
        await store.register_account(
            ACCOUNT, venue="binance-usdm", asset="USDT", poll_interval=60, now=now
        )
        for minute in range(5, -1, -1):
            async with store.cycle() as cycle:
                await cycle.add_snapshot(
                    snapshot(ACCOUNT, now - timedelta(minutes=minute), mark=59_999.2)
                )
        async with store.cycle() as cycle:
            await cycle.add_alert_events(
                ACCOUNT,
                [
                    Event("liquidation_distance", "critical", "firing", now),
                    Event("account_move", "critical", "firing", now),
                ],
            )
            await cycle.save_alert_states(
                ACCOUNT,
                {
                    "liquidation_distance": {"severity": "critical", "started_at": now.isoformat()},
                    "account_move": {"severity": "critical", "started_at": now.isoformat()},
                },
            )
    finally:
        await store.close()
    return url
