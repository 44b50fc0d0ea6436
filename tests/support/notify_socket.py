"""A stand-in for systemd's notify socket: a unix datagram socket that records what a service sends.

Usage::

    with NotifySocket(tmp_path / "notify.sock") as notify:
        env["NOTIFY_SOCKET"] = str(notify.path)
        ...start the service...
        notify.wait_for("READY=1", timeout=20)
        notify.messages      # every datagram so far, as lists of "KEY=value" fields
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType


class NotifySocket:
    """Receives sd_notify datagrams on a background thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[list[str]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> NotifySocket:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode().split("\n"))

    def fields(self) -> list[str]:
        """Every field received so far, in order."""
        with self._lock:
            return [field for message in self.messages for field in message]

    def count(self, field: str) -> int:
        """How many times exactly `field` (e.g. "WATCHDOG=1") was received."""
        return self.fields().count(field)

    def wait_for(self, field: str, timeout: float, *, times: int = 1) -> None:
        """Block until `field` has been received `times` times; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(field) >= times:
                return
            time.sleep(0.05)
        raise AssertionError(f"{field!r} x{times} not received in {timeout}s; got {self.fields()}")
