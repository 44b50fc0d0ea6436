"""`history --every`: a bucket's figures say exactly what they are (last snapshot, lowest,
highest, how many snapshots), never the lowest of the lows passed off as the highest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.storage.migrate import prepare_database
from tests.storage.factories import snapshot

runner = CliRunner()


@pytest.fixture
async def one_hour(tmp_path: Path) -> str:
    """Thirty snapshots in one hour: near 548 % most of it, one dip to 137.2 %."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    store = await prepare_database(url)
    try:
        await store.register_account(
            "main", venue="binance-usdm", asset="USDT", poll_interval=60, now=hour
        )
        for minute in range(30):
            async with store.cycle() as cycle:
                ratio = 1.372 if minute == 10 else 5.48
                await cycle.add_snapshot(
                    snapshot("main", hour + timedelta(minutes=minute), margin_ratio=ratio)
                )
    finally:
        await store.close()
    return url


def test_one_hour_bucket_says_lowest_and_highest_of_its_snapshots(one_hour: str) -> None:
    url = one_hour
    result = runner.invoke(
        app,
        ["history", "--database", url, "--every", "1h", "--since", "3h", "--format", "table"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "margin ratio over 30 snapshot(s): lowest 137.2 %, highest 548 %" in out
    assert "snapshots" in out  # the count column says what it counts
    assert "lowest: the lowest margin ratio of its snapshots" in " ".join(out.split())
    assert max(len(line) for line in out.splitlines()) <= 80
