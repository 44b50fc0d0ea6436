"""A real mosquitto broker on a free 127.0.0.1 port, for tests that need MQTT.

Usage::

    from tests.support.mosquitto import Mosquitto, mosquitto_binary

    with Mosquitto(tmp_path) as broker:      # started, listening
        broker.port                          # the port it listens on
        broker.stop()                        # broker down (clients see a disconnect)
        broker.start()                       # up again on the same port
        broker.kill()                        # SIGKILL, no clean shutdown

Or the pytest fixture `mosquitto` (defined in tests/conftest.py, so every test module can ask for it).
It skips the test with a printed reason when the mosquitto binary is not installed.

The broker keeps no persistence between restarts: retained messages vanish when it stops, which is
exactly what "everything is republished after a broker restart" tests need.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in _CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """One mosquitto process bound to 127.0.0.1:`port`; stoppable and restartable on that port."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        binary: str | None = None,
        listener_options: str = "",
        allow_anonymous: bool = True,
    ) -> None:
        """`listener_options`: extra mosquitto.conf lines for the listener (TLS files,
        `password_file ...`); with `allow_anonymous=False` clients must log in."""
        found = binary or mosquitto_binary()
        if found is None:
            raise RuntimeError("mosquitto is not installed")
        self.binary = found
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        options = listener_options.strip()
        self.config_path.write_text(
            # Started as root, mosquitto drops to user "mosquitto", which cannot read files in
            # pytest's private tmp directory (password file, certificates): stay who we are.
            f"user {getpass.getuser()}\n"
            "per_listener_settings true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            "log_type notice\n"
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
            + (f"{options}\n" if options else "")
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts TCP connections."""
        if self.running:
            return
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_path.open("ab")
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            if self._wait_listening(deadline):
                return
            # The port may still be held by the previous instance's socket in TIME_WAIT: retry.
            self._terminate(kill=True)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mosquitto did not start on {self.host}:{self.port}:\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.2)

    def _wait_listening(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s) and wait for the process to end."""
        self._terminate(kill=False)

    def kill(self) -> None:
        """Kill the broker with SIGKILL: no clean shutdown."""
        self._terminate(kill=True)

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    def _terminate(self, *, kill: bool) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log(self) -> str:
        """What the broker wrote so far (useful in assertion messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
