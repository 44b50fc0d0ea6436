"""Simulated time: a manual clock tests advance by hand, and a scaled one for compressed demos;
real time is the daemon's own `SystemClock`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from monitor.ports import SystemClock


class ScaledClock:
    """Wall-clock time running `speed` times faster from the moment it is created (compressed demos)."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._start = datetime.now(UTC)
        self._wall_start = time.monotonic()

    def now(self) -> datetime:
        """The scaled UTC time."""
        return self._start + timedelta(seconds=(time.monotonic() - self._wall_start) * self.speed)


class ManualClock:
    """Time that stands still until a test moves it, so price paths and liquidations are reproducible."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start if start is not None else datetime.now(UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")

    def now(self) -> datetime:
        """The clock's current UTC time."""
        return self._now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move time forward (never backward) and return the new time."""
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError("time only moves forward")
        self._now += step
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when`, which must not be earlier than the current time."""
        if when < self._now:
            raise ValueError("time only moves forward")
        self._now = when


SimClock = SystemClock | ScaledClock | ManualClock
