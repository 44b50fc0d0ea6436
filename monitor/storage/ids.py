"""The id cache: database ids of accounts, symbols, position legs and tier tables already stored.

A poll cycle looks its rows' ids up here before asking the database. What a write finds or creates
is kept aside (`PendingIds`) and published to the cache only once its transaction committed, so a
rolled-back write never leaves an id that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.domain.model import MarginMode, Side, Tier

# A cached position leg is trusted this long without being used; retention never deletes a leg
# used more recently than its shortest period (at least an hour), so a cached id stays valid.
LEG_CACHE_SECONDS = 600.0

# Account id, symbol, side, margin mode, quantity, entry price, leverage.
LegKey = tuple[int, str, Side, MarginMode, float, float, float | None]
# A snapshot's positions as far as stored ids and tier tables go: venue, then per position its
# symbol, side, margin mode, quantity, entry price, leverage and tier table.
PositionTerms = tuple[str, tuple[tuple[Any, ...], ...]]


@dataclass(frozen=True, slots=True)
class KnownPositions:
    """An account's last stored position terms and their leg ids, to skip per-position lookups.

    Valid while `tiers_version` is the cache's: no tier table was loaded or changed since, so
    every position's tier table is still the one recorded for its symbol.
    """

    terms: PositionTerms
    leg_ids: tuple[int, ...]
    tiers_version: int
    used: float


@dataclass(slots=True)
class _Maps:
    accounts: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, int] = field(default_factory=dict)
    # leg id and when it was last used (time.monotonic)
    legs: dict[LegKey, tuple[int, float]] = field(default_factory=dict)
    tiers: dict[tuple[str, str], tuple[Tier, ...]] = field(default_factory=dict)
    positions: dict[int, KnownPositions] = field(default_factory=dict)
    # (pool currency, margin model) as stored on each account row
    pools: dict[str, tuple[str, str]] = field(default_factory=dict)


class IdCache:
    """Ids known to exist in the database (published only after a commit)."""

    def __init__(self) -> None:
        self._known = _Maps()
        # Counts the commits that recorded a tier table: cached position terms older than the
        # last one are looked up again.
        self.tiers_version = 0

    def account(self, name: str) -> int | None:
        """The account's id, if known."""
        return self._known.accounts.get(name)

    def remember_account(self, name: str, account_id: int) -> None:
        """After a committed write: the account has this id."""
        self._known.accounts[name] = account_id

    def forget_legs(self) -> None:
        """Retention may have deleted legs: look every leg up again."""
        self._known.legs.clear()
        self._known.positions.clear()

    def pending(self) -> PendingIds:
        """An empty set of ids for one write, reading through to this cache."""
        return PendingIds(self)


class PendingIds:
    """Ids one write found or created, on top of the cache's; `publish` once it committed."""

    __slots__ = ("_cache", "_known", "_new")

    def __init__(self, cache: IdCache) -> None:
        self._cache = cache
        self._known = cache._known
        self._new = _Maps()

    def restart(self) -> None:
        """The write starts (again, after a rolled-back try): forget what it found so far."""
        self._new = _Maps()

    def publish(self) -> None:
        """After commit: the ids this write created or confirmed are known to the cache."""
        new, known = self._new, self._known
        known.accounts.update(new.accounts)
        known.symbols.update(new.symbols)
        known.legs.update(new.legs)
        known.tiers.update(new.tiers)
        known.positions.update(new.positions)
        known.pools.update(new.pools)
        if new.tiers:
            self._cache.tiers_version += 1

    @property
    def tiers_version(self) -> int:
        """The cache's tier version (see `KnownPositions`)."""
        return self._cache.tiers_version

    @property
    def tiers_changed(self) -> bool:
        """Whether this write recorded or looked up a tier table."""
        return bool(self._new.tiers)

    def account(self, name: str) -> int | None:
        """The account's id, if known."""
        return self._new.accounts.get(name) or self._known.accounts.get(name)

    def set_account(self, name: str, account_id: int) -> None:
        """The account has this id."""
        self._new.accounts[name] = account_id

    def symbol(self, name: str) -> int | None:
        """The symbol's id, if known."""
        return self._new.symbols.get(name) or self._known.symbols.get(name)

    def set_symbol(self, name: str, symbol_id: int) -> None:
        """The symbol has this id."""
        self._new.symbols[name] = symbol_id

    def leg(self, key: LegKey) -> tuple[int, float] | None:
        """The leg id of these position terms and when it was last used, if known."""
        return self._new.legs.get(key) or self._known.legs.get(key)

    def set_leg(self, key: LegKey, leg_id: int, used: float) -> None:
        """These position terms have this leg id, used at `used` (time.monotonic)."""
        self._new.legs[key] = (leg_id, used)

    def tiers(self, venue: str, symbol: str) -> tuple[Tier, ...] | None:
        """The symbol's newest recorded tier table, if known."""
        key = (venue, symbol)
        return self._new.tiers.get(key) or self._known.tiers.get(key)

    def set_tiers(self, venue: str, symbol: str, tiers: tuple[Tier, ...]) -> None:
        """The symbol's newest recorded tier table is `tiers`."""
        self._new.tiers[(venue, symbol)] = tiers

    def positions(self, account_id: int) -> KnownPositions | None:
        """The account's last stored position terms and leg ids, if known."""
        return self._new.positions.get(account_id) or self._known.positions.get(account_id)

    def set_positions(self, account_id: int, known: KnownPositions) -> None:
        """The account's positions were stored with these terms and leg ids."""
        self._new.positions[account_id] = known

    def pool(self, account: str) -> tuple[str, str] | None:
        """The (pool currency, margin model) stored on the account row, if known."""
        return self._new.pools.get(account) or self._known.pools.get(account)

    def set_pool(self, account: str, pool: tuple[str, str]) -> None:
        """The account row now holds this pool currency and margin model."""
        self._new.pools[account] = pool
