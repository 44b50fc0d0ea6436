"""`portfolio-monitor run` as a real subprocess, with a fake systemd notify socket.

Usage::

    with DaemonProcess(config_path, tmp_path) as daemon:   # started; READY=1 awaited
        daemon.notify.wait_for("WATCHDOG=1", 10)
        daemon.terminate()                                  # SIGTERM; returns the exit status
        daemon.log()                                        # everything it wrote to stderr
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.support.notify_socket import NotifySocket

BINARY = Path(sys.executable).with_name("portfolio-monitor")


class DaemonProcess:
    """One daemon subprocess; restartable with `start()` after it exited."""

    def __init__(self, config: Path, workdir: Path, *, ready_timeout: float = 30.0) -> None:
        self.config = config
        self.workdir = workdir
        self.ready_timeout = ready_timeout
        self.log_path = workdir / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None
        # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="pm-notify-"))
        self.notify = NotifySocket(self._socket_dir / "notify.sock")
        self.notify.__enter__()

    def start(self, *, wait_ready: bool = True) -> None:
        """Start the daemon (appending to the same log) and wait for READY=1."""
        readies = self.notify.count("READY=1")
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify.path),
            "WATCHDOG_USEC": "2000000",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("WATCHDOG_PID", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BINARY), "run", "--config", str(self.config), "--log-level", "debug"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if wait_ready:
            deadline = time.monotonic() + self.ready_timeout
            while self.notify.count("READY=1") <= readies:
                if self.process.poll() is not None:
                    raise AssertionError(f"daemon exited {self.process.returncode}:\n{self.log()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no READY=1 in {self.ready_timeout}s:\n{self.log()}")
                time.sleep(0.05)

    def log(self) -> str:
        """Everything the daemon printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        """Send a signal to the running daemon."""
        assert self.process is not None
        self.process.send_signal(signum)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown at all."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def wait(self, timeout: float) -> int:
        """Wait for exit; the exit status (AssertionError with the log if it does not exit)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"daemon did not exit within {timeout}s:\n{self.log()}") from None

    def __enter__(self) -> DaemonProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.notify.__exit__(None, None, None)
        shutil.rmtree(self._socket_dir, ignore_errors=True)
