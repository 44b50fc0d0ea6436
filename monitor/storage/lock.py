"""One daemon per SQLite file: an OS lock on `<database>.lock` beside the database.

Two daemons writing one file would store every snapshot twice and send every alert twice. The
daemon holds an exclusive `flock` on the lock file for as long as it runs; the kernel drops it when
the process ends however it ends (kill -9 included), so there is no stale lock to clean up. The
file holds the holder's pid and host name so that the refusal names them. Read commands
(`status`, `history`, `backup`, `prune`, ...) never take the lock: SQLite's own locking lets them
work beside the daemon. PostgreSQL has no file to lock; several daemons there are a matter of
account leases, not of this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from monitor.errors import DatabaseInUse, StorageRefused, StorageUnavailable


def lock_path(database: Path) -> Path:
    """The lock file of an SQLite database file: `monitor.db` -> `monitor.db.lock`."""
    return database.with_name(f"{database.name}.lock")


@contextlib.contextmanager
def writer_lock(database: Path) -> Iterator[Path]:
    """Hold the writer lock of `database` for the duration of the block.

    Raises `DatabaseInUse` naming the holder's pid and host when another process has it, and
    `StorageError` when the lock file cannot be opened (a read-only directory).
    """
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageRefused(f"cannot open the database lock file {path}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            raise DatabaseInUse(
                f"another portfolio-monitor daemon ({holder}) is already running on the database "
                f"{database} (lock file {path}); one daemon per SQLite file, or every snapshot and "
                "alert would be doubled. Stop it first, or give this one its own database.",
                holder=holder,
            ) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot lock {path}: {exc}") from exc
        # Written only once the lock is ours: the holder's identity is never half-written for a
        # second daemon to read (it reads under our lock, after we wrote).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield path
        finally:
            # Emptied before the lock goes, so a reader never names a daemon that has stopped.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    # A holder that has locked but not yet written its line: still a daemon, just unnamed.
    return text or "pid unknown"
