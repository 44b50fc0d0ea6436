"""Journald gets `<N>` priority prefixes and no timestamps; a console gets timestamps."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

import pytest

from monitor.logconfig import QUIET_LOGGERS, configure_logging, journal_priority


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers; give pytest's own back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in (*QUIET_LOGGERS, "apscheduler")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, previous in quiet.items():
        logging.getLogger(name).setLevel(previous)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_priorities(level: int, priority: int) -> None:
    assert journal_priority(level) == priority


def _journal_stream_is_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    stat = os.fstat(sys.stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")


def test_journal_format(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    _journal_stream_is_stderr(monkeypatch)
    configure_logging(logging.DEBUG)
    logging.getLogger("monitor.test").warning("account=main poll failed\nsecond line")
    logging.getLogger("monitor.test").debug("cycle done")
    lines = capfd.readouterr().err.splitlines()
    assert lines == [
        "<4>monitor.test: account=main poll failed",
        "<4>second line",
        "<7>monitor.test: cycle done",
    ]


def test_console_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.INFO, rich_tty=False)
    logging.getLogger("monitor.test").info("hello")
    logging.getLogger("apscheduler.scheduler").info("chatter")
    err = capsys.readouterr().err
    assert "INFO    monitor.test: hello" in err
    assert err[:4].isdigit()
    assert "Z " in err
    assert "chatter" not in err


def test_journal_stream_inherited_by_a_terminal_is_not_the_journal(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # A shell started by a systemd unit inherits JOURNAL_STREAM, but its stderr is elsewhere:
    # a person there wants timestamps, not "<6>" prefixes.
    stat = os.fstat(sys.stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino + 1}")
    configure_logging(logging.INFO, rich_tty=False)
    logging.getLogger("monitor.test").info("hello")
    err = capfd.readouterr().err
    assert not err.startswith("<")
    assert "INFO    monitor.test: hello" in err
