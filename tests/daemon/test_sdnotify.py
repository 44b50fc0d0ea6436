"""sd_notify reaches a real unix datagram socket, abstract or not, and is a no-op outside systemd."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from monitor import sdnotify
from monitor.daemon import cycles_are_finishing
from tests.support.notify_socket import NotifySocket


def test_without_notify_socket_nothing_is_sent() -> None:
    assert sdnotify.notify("READY=1") is False


def test_fields_arrive_in_one_datagram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with NotifySocket(tmp_path / "n.sock") as receiver:
        monkeypatch.setenv("NOTIFY_SOCKET", str(receiver.path))
        assert sdnotify.notify("READY=1", "STATUS=2/2 accounts ok")
        receiver.wait_for("READY=1", timeout=2)
        assert receiver.messages == [["READY=1", "STATUS=2/2 accounts ok"]]


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"portfolio-monitor-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("WATCHDOG=1")
        assert receiver.recv(100) == b"WATCHDOG=1"


def test_vanished_socket_is_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sdnotify.notify("READY=1") is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("90000000", None, 45.0),
        ("90000000", "self", 45.0),
        ("90000000", "1", None),
        ("0", None, None),
        ("garbage", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert sdnotify.watchdog_interval() == expected


@pytest.mark.parametrize(
    ("since_last", "intervals", "expected"),
    [
        (5.0, [10.0], True),
        (79.9, [10.0, 30.0], True),
        (80.1, [10.0, 30.0], False),
        (1e6, [], True),
    ],
)
def test_watchdog_pings_only_while_cycles_finish(
    since_last: float, intervals: list[float], expected: bool
) -> None:
    # Two of the longest interval (30 s) plus a 20 s fetch timeout: 80 s.
    assert cycles_are_finishing(since_last, intervals, fetch_timeout=20.0) is expected
