"""`status --watch`: the table drawn again every N seconds until Ctrl-C, as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.cli.conftest import ACCOUNT
from tests.support.daemon import BINARY

HEADER = "portfolio-monitor status at "


def test_watch_redraws_until_ctrl_c_and_ends_cleanly(db: str) -> None:
    watcher = subprocess.Popen(
        [str(BINARY), "status", "--database", db, "--watch", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert watcher.stdout is not None
        while sum(line.startswith(HEADER) for line in lines) < 3:
            assert time.monotonic() < deadline, "".join(lines)
            line = watcher.stdout.readline()
            assert line, (
                f"status --watch ended early: {watcher.stderr.read() if watcher.stderr else ''}"
            )
            lines.append(line)
        watcher.send_signal(signal.SIGINT)
        rest, errors = watcher.communicate(timeout=10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, errors
    assert "Traceback" not in errors
    screen = "".join(lines) + rest
    # Every draw shows the account and its figures afresh (the third was cut by Ctrl-C).
    assert screen.count(ACCOUNT) >= 2
    assert "9,000.00" in screen


def test_watch_draws_only_tables(db: str) -> None:
    done = subprocess.run(
        [str(BINARY), "status", "--database", db, "--watch", "1", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--watch" in done.stderr
