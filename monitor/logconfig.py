"""Logging set-up that suits both journald and a person at a terminal.

Under systemd (stderr is the stream `$JOURNAL_STREAM` names) each line starts with a `<N>` syslog priority, which journald
strips and records as the priority; journald adds its own timestamps. Elsewhere lines carry a UTC
timestamp, or go through rich when stderr is a terminal.
"""

from __future__ import annotations

import logging
import os
import sys
import time

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
# Third-party loggers that are chatty at INFO/DEBUG about things the user cannot act on.
QUIET_LOGGERS = ("aiosqlite", "ccxt", "httpx", "httpcore", "asyncio", "alembic")


def journal_priority(levelno: int) -> int:
    """The syslog priority journald should record for a Python log level."""
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """`<N>logger: message`, one physical line per record (journald splits on newlines)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def stderr_is_journal() -> bool:
    """Whether stderr is the journal stream systemd opened for us.

    Not merely whether `$JOURNAL_STREAM` is set: a shell started by a service (a terminal
    emulator run as a systemd user unit) inherits the variable, and a person at that terminal
    would get `<6>` prefixes and no timestamps. systemd.exec(5) says to compare the device and
    inode it names with stderr's.
    """
    device, sep, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not sep:
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        # No real file behind stderr (io.UnsupportedOperation is both), or a garbled variable.
        return False


def _console_formatter() -> logging.Formatter:
    formatter = logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ"
    )
    formatter.converter = time.gmtime
    return formatter


def configure_logging(level: int | str = logging.INFO, *, rich_tty: bool = True) -> None:
    """Route every log record to stderr in the format that fits where stderr goes."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    handler: logging.Handler
    if stderr_is_journal():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    elif rich_tty and sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, log_time_format="%H:%M:%S")
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_console_formatter())
    root.addHandler(handler)
    root.setLevel(level)
    quiet_level = max(logging.WARNING, root.level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet_level)
    # monitor.scheduling reports skipped and dropped runs itself, naming the account; job
    # errors (a bug in a poll) still come through at ERROR.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
