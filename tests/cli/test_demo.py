"""`portfolio-monitor demo --no-live` runs simulator and daemon, stores snapshots and says what to try."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.daemon.e2e_support import snapshot_counts
from tests.support.daemon import BINARY

pytestmark = pytest.mark.e2e


def test_short_demo_stores_snapshots_and_prints_next_steps(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    result = subprocess.run(
        [str(BINARY), "demo", "--no-live", "--duration", "5", "--state-dir", str(state)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": "/usr/bin:/bin"},  # as after `make demo`: .venv/bin not on PATH
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Database: {state / 'monitor.db'}" in result.stdout
    # The dashboard is on, and its address is the first thing printed.
    assert result.stdout.startswith("Dashboard: http://127.0.0.1:")
    assert "monitor.web.server: dashboard on http://127.0.0.1:" in result.stderr
    for command in ("status", "history", "alerts"):
        assert f"portfolio-monitor {command}" in result.stdout
    # The suggested commands run as printed (the command path works even when .venv/bin is not on PATH).
    status_line = next(line for line in result.stdout.splitlines() if " status --config " in line)
    status = subprocess.run(
        [*status_line.split(), "--format", "json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    # The daemon has stopped, so whether the data already counts as stale (3 polls of 1 s) depends
    # on how long shutdown took; the exit status must agree with what status reports either way.
    rows = json.loads(status.stdout)
    assert {row["account"] for row in rows} == {"demo-binance", "demo-bybit"}
    assert status.returncode == (1 if any(row["stale"] for row in rows) else 0), status.stderr
    counts = snapshot_counts(state)
    assert set(counts) == {"demo-binance", "demo-bybit"}
    assert min(counts.values()) >= 2
    # --no-live prints one log line per account and cycle instead of the table.
    assert "account=demo-binance equity=" in result.stderr

    assert (state / "config.toml").is_file()
