"""Fixtures shared by every test module."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own PORTFOLIO_MONITOR_* settings or systemd variables."""
    import os

    for name in list(os.environ):
        if name.startswith(("PORTFOLIO_MONITOR_", "NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    return
