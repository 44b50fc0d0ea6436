"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, a free 127.0.0.1 port.

Usage (session-scoped fixture)::

    with PostgresCluster.start() as cluster:
        url = cluster.create_database("t1")    # postgresql://postgres@127.0.0.1:PORT/t1

The server refuses to run as root, so when the tests run as root the cluster belongs to the
unprivileged `nobody` user (`runuser`). Missing server binaries: `PostgresCluster.start()` raises
`PostgresUnavailable`; `require_postgres()` turns that into a skip with a reason outside CI and a
failure in CI (CI=true), where `.ci/run` installs the `postgresql` package.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.support.tools import tool_missing

SUPERUSER = "postgres"
_RUN_AS = "nobody"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed here."""


def server_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binary directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _major(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """A running server on 127.0.0.1 with trust authentication; removed on exit."""

    def __init__(self, bin_dir: Path, root: Path, port: int, as_user: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = port
        self._as_user = as_user
        self._databases = 0

    @classmethod
    def start(cls) -> PostgresCluster:
        """initdb + pg_ctl start; raises PostgresUnavailable without server binaries."""
        bin_dir = server_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb) not found; install the `postgresql` package"
            )
        # Not pytest's tmp_path: it is private to root, and the server may run as `nobody`.
        root = Path(tempfile.mkdtemp(prefix="pm-pg-"))
        as_user = _RUN_AS if os.geteuid() == 0 else None
        if as_user is not None:
            shutil.chown(root, user=as_user)
        cluster = cls(bin_dir, root, _free_port(), as_user)
        try:
            cluster._run(
                "initdb",
                "-D",
                str(cluster.data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
            cluster._run(
                "pg_ctl",
                "-D",
                str(cluster.data),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {cluster.port} -k {root} -F -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off",
                "start",
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self._as_user is not None:
            command = ["runuser", "-u", self._as_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            log = self.root / "server.log"
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{server_log[-2000:]}"
            )

    def url(self, database: str = "postgres") -> str:
        """A plain URL for `database` (the user-facing form, without a driver)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its URL."""
        self._databases += 1
        name = f"{prefix}_{self._databases}"
        self._run(
            "psql",
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres"),
            *("-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'),
        )
        return self.url(name)

    def stop(self) -> None:
        """Stop the server immediately and delete its files."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def require_postgres() -> PostgresCluster:
    """Start a cluster, or skip with the reason (fail under CI) when PostgreSQL is not installed."""
    try:
        return PostgresCluster.start()
    except PostgresUnavailable as exc:
        tool_missing(f"PostgreSQL server: {exc}")
