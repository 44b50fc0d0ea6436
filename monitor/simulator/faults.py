"""Faults injected per account and time window: what a misbehaving venue would answer instead."""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass

from monitor.simulator.scenario import FaultSpec

_ids = itertools.count(1)


@dataclass(slots=True)
class ActiveFault:
    """A fault in force: `start`/`end` are scenario seconds; `remaining` counts requests left (None: unlimited)."""

    spec: FaultSpec
    start: float
    end: float | None
    remaining: int | None
    id: int
    hits: int = 0

    def applies(self, account: str | None, path: str, elapsed: float) -> bool:
        """Whether this fault answers a request of `account` on `path` at scenario second `elapsed`."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        if elapsed < self.start or (self.end is not None and elapsed >= self.end):
            return False
        if self.spec.account is not None and self.spec.account != account:
            return False
        return self.spec.path is None or fnmatch.fnmatchcase(path, self.spec.path)


class FaultBook:
    """The faults of one simulator run."""

    def __init__(self) -> None:
        self._faults: list[ActiveFault] = []

    def add(self, spec: FaultSpec, *, offset: float = 0.0) -> ActiveFault:
        """Schedule `spec`, its start counted from scenario second `offset`."""
        start = offset + spec.start
        end = None if spec.duration is None else start + spec.duration
        fault = ActiveFault(spec, start, end, spec.count, next(_ids))
        self._faults.append(fault)
        return fault

    def take(self, account: str | None, path: str, elapsed: float) -> ActiveFault | None:
        """The first fault answering this request, its request count consumed."""
        for fault in self._faults:
            if fault.applies(account, path, elapsed):
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def remove(self, fault: ActiveFault) -> None:
        """Lift one fault."""
        if fault in self._faults:
            self._faults.remove(fault)

    def clear(self) -> None:
        """Lift every fault."""
        self._faults.clear()

    @property
    def active(self) -> tuple[ActiveFault, ...]:
        """Faults still scheduled or in force."""
        return tuple(self._faults)
