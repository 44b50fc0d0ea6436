"""Storage outages with the daemon as a subprocess: a full disk (a small tmpfs, or the daemon's
file-size limit lowered when nothing can be mounted here) and a database locked by another
connection. The "storage failing" alert reaches the webhook, a real threshold crossing during
the outage still does, and once writes work the alert resolves by itself, the outbox holds the
alerts (as delivered: none is sent twice) and snapshots resume."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import (
    MARGIN_RATIO_ONLY,
    account_lines,
    btc_price_for_ratio,
    database,
    json_webhook_lines,
    snapshot_counts,
)
from tests.support.daemon import BINARY, DaemonProcess
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e]

WARNING_PRICE = btc_price_for_ratio(2.4)


def _config(tmp_path: Path, state: Path, sim: SimulatorServer, hook: WebhookReceiver) -> Path:
    info = sim.accounts["main"]
    lines = [
        f"state_dir = {json.dumps(str(state))}",
        # The poll path: one snapshot a poll, which the test counts (live marks store fewer).
        "[streams]",
        "enabled = false",
        *json_webhook_lines(hook.url, retry_max="1s"),
        *MARGIN_RATIO_ONLY,
        *account_lines("main", info.api_key, info.api_secret, sim.base_url),
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class _Disk:
    """Where the state directory lives, and how to fill it and give the space back."""

    def __init__(self, root: Path, how: str) -> None:
        self.root = root
        self.how = how
        self._filler = root / "filler"
        self.daemon_pid: int | None = None

    def fill(self) -> None:
        if self.how == "tmpfs":
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
                    with contextlib.suppress(OSError):
                        while os.write(fd, b"\0" * chunk):
                            pass
            finally:
                os.close(fd)
        else:
            # Every file the daemon writes may not grow any more (EFBIG, like a full disk).
            assert self.daemon_pid is not None
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.prlimit(self.daemon_pid, resource.RLIMIT_FSIZE, (0, hard))

    def free(self) -> None:
        if self.how == "tmpfs":
            self._filler.unlink()
        else:
            assert self.daemon_pid is not None
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.prlimit(self.daemon_pid, resource.RLIMIT_FSIZE, (hard, hard))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[_Disk]:
    """A 8 MiB tmpfs when this user may mount one, else the daemon's RLIMIT_FSIZE (printed)."""
    root = tmp_path / "disk"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    how = "tmpfs" if mounted.returncode == 0 else "rlimit-fsize"
    print(f"full disk simulated with: {how} ({mounted.stderr.strip() or 'mounted 8 MiB'})")
    try:
        yield _Disk(root, how)
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", "-l", str(root)], check=False)


def _outbox(state: Path) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(database(state), timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT notification_id, sink, delivered_at, attempts, payload FROM outbox "
            "ORDER BY created_at, id"
        ).fetchall()
    return [dict(row) for row in rows]


def _events(hook: WebhookReceiver, rule: str) -> list[tuple[str, str]]:
    return [(p["event"], p["id"]) for p in hook.payloads if p.get("rule") == rule]


async def _status(config: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(BINARY), "status", "--config", str(config), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _outage_then_recovery(
    tmp_path: Path,
    state: Path,
    sim: SimulatorServer,
    hook: WebhookReceiver,
    *,
    break_storage: Callable[[DaemonProcess], None],
    restore_storage: Callable[[], None],
    cause: str,
    status_says: str | None,
    log_kept: bool = True,
) -> None:
    config = _config(tmp_path, state, sim, hook)
    daemon = DaemonProcess(config, tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        await wait_until(lambda: snapshot_counts(state).get("main", 0) >= 2, 20, "snapshots")
        break_storage(daemon)
        firing = await hook.wait_for(
            lambda p: p.get("rule") == "storage_failing" and p["event"] == "firing", within=15
        )
        assert firing["severity"] == "critical"
        assert firing["account"] == ""  # the daemon's, not an account's
        assert firing["facts"]["cause"] == cause, firing
        before = snapshot_counts(state)["main"]

        # A real threshold crossing while nothing can be written still reaches the receiver.
        sim.set_price("BTC", WARNING_PRICE)
        alert = await hook.wait_for(
            lambda p: p.get("rule") == "margin_ratio" and p["event"] == "firing", within=15
        )
        await asyncio.sleep(1)  # cycles held in memory
        assert snapshot_counts(state)["main"] == before  # nothing was written meanwhile
        if status_says is not None:
            status = await _status(config)
            assert status.returncode == 1, status
            assert "STORAGE FAILING" in status.stderr, status
            assert status_says in status.stderr, status
        assert any("STORAGE FAILING" in f for f in daemon.notify.fields())

        restore_storage()
        await hook.wait_for(
            lambda p: p.get("rule") == "storage_failing" and p["event"] == "resolved", within=20
        )
        await wait_until(
            lambda: snapshot_counts(state)["main"] > before + 3, 10, "snapshots resume", daemon.log
        )
        await asyncio.sleep(1.5)  # a duplicate sent by our own retry would arrive by now

        rows = {(r["notification_id"], r["sink"]): r for r in _outbox(state)}
        for event in (firing, alert):
            row = rows[(event["id"], "hook")]
            assert row["delivered_at"] is not None, row  # stored as sent: not sent again
        resolved_ids = [i for e, i in _events(hook, "storage_failing") if e == "resolved"]
        assert (resolved_ids[0], "hook") in rows
        ids = [str(p["id"]) for p in hook.payloads]
        assert len(ids) == len(set(ids)), ids  # every alert once
        assert _events(hook, "margin_ratio") == [("firing", alert["id"])]
        status = await _status(config)
        assert "STORAGE FAILING" not in status.stderr, status
        log = daemon.log()
        # One line when it started (and one if the cause changed), not one per cycle.
        assert log.count("ERROR") <= 3, log
        if log_kept:
            assert log.count("ERROR") >= 1, log
        assert "storage works again" in log
        assert await asyncio.to_thread(daemon.terminate) == 0
    finally:
        daemon.__exit__(None, None, None)


async def test_a_full_disk_raises_the_storage_alert_and_recovers_alone(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver, small_disk: _Disk
) -> None:
    state = small_disk.root / "state"

    def fill(daemon: DaemonProcess) -> None:
        assert daemon.process is not None
        small_disk.daemon_pid = daemon.process.pid
        small_disk.fill()

    await _outage_then_recovery(
        tmp_path,
        state,
        sim,
        hook,
        break_storage=fill,
        restore_storage=small_disk.free,
        # A file-size limit shows as an I/O error: SQLite does not say which.
        cause="disk full" if small_disk.how == "tmpfs" else "other",
        status_says="disk full" if small_disk.how == "tmpfs" else None,
        # The file-size limit also stops the daemon's log file (its stdout) from growing.
        log_kept=small_disk.how == "tmpfs",
    )
    if small_disk.how == "tmpfs":
        # The write-ahead log was given back: it does not keep the disk full.
        wal = database(state).with_name("monitor.db-wal")
        assert not wal.exists() or wal.stat().st_size < 4 << 20


async def test_a_locked_database_raises_the_storage_alert_and_recovers_alone(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver
) -> None:
    state = tmp_path / "state"
    holder: list[sqlite3.Connection] = []

    def lock(_daemon: DaemonProcess) -> None:
        conn = sqlite3.connect(database(state), timeout=10, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        holder.append(conn)

    def unlock() -> None:
        conn = holder.pop()
        conn.execute("ROLLBACK")
        conn.close()

    try:
        await _outage_then_recovery(
            tmp_path,
            state,
            sim,
            hook,
            break_storage=lock,
            restore_storage=unlock,
            cause="locked",
            status_says="locked",
        )
    finally:
        for conn in holder:
            conn.close()
