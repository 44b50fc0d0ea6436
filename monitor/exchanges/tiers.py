"""Bracket / risk-tier tables, cached with a refresh interval, and the changes between refreshes.

Exchanges change their maintenance-margin rules without notice; a change moves every liquidation
price, so each one is reported ("the exchange changed the rules under you").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from monitor.domain.model import Tier, Venue
from monitor.ports import TierChange

TierTable = tuple[Tier, ...]

# Equal tables become one object: every account holding a symbol then holds the venue's same
# table, and the margin engine remembers a table's shape by identity (4,096 of them); a thousand
# accounts' own copies of 20 tables overflowed that memory, so every assessment re-scanned them.
_SHARED: dict[TierTable, TierTable] = {}
_SHARED_KEPT = 65_536


def shared_table(table: TierTable) -> TierTable:
    """The one object for every table equal to `table`."""
    known = _SHARED.get(table)
    if known is not None:
        return known
    if len(_SHARED) >= _SHARED_KEPT:
        _SHARED.clear()  # only sharing is lost, and tables rarely change
    _SHARED[table] = table
    return table


class TierBook:
    """The tier tables one account uses, with their age and the changes not yet collected."""

    def __init__(
        self,
        account: str,
        venue: Venue,
        refresh_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._account = account
        self._venue = venue
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._tables: dict[str, TierTable] = {}
        self._loaded_at: dict[str, float] = {}
        self._pending: list[TierChange] = []

    def stale(self, symbols: Iterable[str]) -> list[str]:
        """The symbols whose table is missing or older than the refresh interval."""
        now = self._clock()
        return [
            symbol
            for symbol in symbols
            if now - self._loaded_at.get(symbol, -float("inf")) >= self.refresh_interval
        ]

    def update(self, tables: Mapping[str, TierTable]) -> None:
        """Store freshly fetched tables and note the ones that are new or different."""
        now = self._clock()
        for symbol, fetched in tables.items():
            table = shared_table(fetched)
            previous = self._tables.get(symbol)
            if previous != table:
                self._pending.append(
                    TierChange(self._account, self._venue, symbol, previous, table)
                )
            self._tables[symbol] = table
            self._loaded_at[symbol] = now

    def covers(self, symbols: Iterable[str]) -> bool:
        """Whether every one of `symbols` has a table, however old."""
        return all(symbol in self._tables for symbol in symbols)

    def table(self, symbol: str) -> TierTable | None:
        """The cached table of `symbol`, None if never fetched."""
        return self._tables.get(symbol)

    def drain(self) -> list[TierChange]:
        """The tables seen or changed since the last call, oldest first."""
        pending, self._pending = self._pending, []
        return pending


def tiers_from_rows(rows: Iterable[tuple[float, float | None, float, float]]) -> TierTable:
    """A table from (floor, cap, mmr, deduction) rows sorted by floor; the last tier has no cap,
    so a notional beyond the exchange's last cap still finds its (highest) rate."""
    ordered = sorted(rows, key=lambda row: row[0])
    last = len(ordered) - 1
    return tuple(
        Tier(floor=floor, cap=None if i == last else cap, mmr=mmr, deduction=deduction)
        for i, (floor, cap, mmr, deduction) in enumerate(ordered)
    )
