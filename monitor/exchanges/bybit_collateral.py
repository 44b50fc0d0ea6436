"""Bybit's collateral rules for a Unified Trading Account, re-read hourly like the risk limits.

- Tiered collateral value ratios: `GET /v5/spot-margin-trade/collateral` (public, every coin in one
  request): `collateralRatioList` rows `minQty`/`maxQty`/`collateralRatio`, each ratio applying to
  the part of a positive balance inside its quantity range ("Collateral Value Ratios in UTA":
  BTC 0-10 at 0.98, 10-20 at 0.95, ...). Bybit deprecated the flat `collateralRatio` of
  collateral-info for these tiers on 19 February 2025.
- Whether a coin counts at all: `GET /v5/account/collateral-info` (private, every coin in one
  request): `marginCollateral` (the platform accepts it) and `collateralSwitch` (the user has it
  on). The wallet-balance rows carry the same two flags on current accounts; they win when present
  because they are read every poll.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from typing import Any

from monitor.domain.errors import ExchangeDataError
from monitor.domain.model import CollateralTier
from monitor.exchanges.fields import as_list, as_mapping, number, optional_number, text

CollateralTiers = tuple[CollateralTier, ...]


class CollateralBook:
    """The collateral tiers and switches of one account, with their age."""

    def __init__(
        self, refresh_interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_interval = refresh_interval
        self._clock = clock
        self.tiers: dict[str, CollateralTiers] = {}
        self.switches: dict[str, bool] = {}
        self._loaded_at = -float("inf")
        # Why the tables could not be read, while they never were (None: read, or not tried).
        self.failure: str | None = None
        self._retry_at = -float("inf")

    @property
    def loaded(self) -> bool:
        """Whether the tables were ever read."""
        return self._loaded_at > -float("inf")

    def stale(self) -> bool:
        """Whether the tables are missing or older than the refresh interval (and a failed read
        is not waiting for its retry)."""
        now = self._clock()
        return now - self._loaded_at >= self.refresh_interval and now >= self._retry_at

    def failed(self, reason: str, retry_in: float) -> None:
        """A read failed: ask again in `retry_in` s; `reason` is kept while never read."""
        self._retry_at = self._clock() + retry_in
        if not self.loaded:
            self.failure = reason

    def update(self, tiers: Mapping[str, CollateralTiers], switches: Mapping[str, bool]) -> None:
        """Store freshly read tables."""
        self.tiers = dict(tiers)
        self.switches = dict(switches)
        self._loaded_at = self._clock()
        self.failure = None


def result_list(response: Any, where: str) -> list[Any]:
    """The `result.list` array of a v5 envelope."""
    result = as_mapping(as_mapping(response, where).get("result"), f"{where}.result")
    return as_list(result.get("list"), f"{where}.result.list")


def collateral_tiers(response: Any, where: str) -> dict[str, CollateralTiers]:
    """Tiered collateral value ratios per coin from a spot-margin-trade/collateral response."""
    tables: dict[str, CollateralTiers] = {}
    for index, raw in enumerate(result_list(response, where)):
        path = f"{where}.result.list[{index}]"
        row = as_mapping(raw, path)
        coin = text(row, "currency", path)
        tiers = []
        for number_, tier_raw in enumerate(
            as_list(row.get("collateralRatioList"), f"{path}.collateralRatioList")
        ):
            tier_path = f"{path}.collateralRatioList[{number_}]"
            tier = as_mapping(tier_raw, tier_path)
            ratio = number(tier, "collateralRatio", tier_path)
            if not 0.0 <= ratio <= 1.0:
                raise ExchangeDataError(
                    f"{tier_path}.collateralRatio: {ratio} is not between 0 and 1"
                )
            tiers.append(CollateralTier(number(tier, "minQty", tier_path), ratio))
        tiers.sort(key=lambda tier: tier.floor)
        if not tiers or tiers[0].floor != 0.0:
            raise ExchangeDataError(f"{path}.collateralRatioList: no tier starting at quantity 0")
        # Two tiers with the same lower bound would make the tranche values ambiguous.
        if any(a.floor == b.floor for a, b in itertools.pairwise(tiers)):
            raise ExchangeDataError(f"{path}.collateralRatioList: two tiers start at one quantity")
        tables[coin] = tuple(tiers)
    return tables


def collateral_switches(response: Any, where: str) -> dict[str, bool]:
    """Per coin: whether it counts as margin (the platform accepts it and the user switched it on),
    from a collateral-info response."""
    switches = {}
    for index, raw in enumerate(result_list(response, where)):
        path = f"{where}.result.list[{index}]"
        row = as_mapping(raw, path)
        switches[text(row, "currency", path)] = counts_as_margin(row, path)
    return switches


def counts_as_margin(row: Mapping[str, Any], where: str) -> bool:
    """`marginCollateral` and `collateralSwitch` of a collateral-info or wallet-balance row."""
    platform = _flag(row, "marginCollateral", where)
    user = _flag(row, "collateralSwitch", where)
    if platform is None or user is None:
        raise ExchangeDataError(f"{where}: marginCollateral / collateralSwitch missing")
    # collateralSwitch is meaningless when the platform does not accept the coin.
    return platform and user


def wallet_switch(row: Mapping[str, Any], where: str) -> bool | None:
    """The wallet row's own collateral flags, None when the row does not carry them."""
    if row.get("marginCollateral") is None and row.get("collateralSwitch") is None:
        return None
    return counts_as_margin(row, where)


def _flag(row: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    raise ExchangeDataError(f"{where}.{key}: {value!r} is not true or false")


def spot_usd_index(response: Any, where: str) -> tuple[float, float | None]:
    """(usdIndexPrice, lastPrice) of the one spot ticker of a /v5/market/tickers?category=spot
    response; Bybit's USD index price of the pair's base coin is the one it values UTA assets at."""
    rows = result_list(response, where)
    if not rows:
        raise ExchangeDataError(f"{where}.result.list: empty")
    path = f"{where}.result.list[0]"
    row = as_mapping(rows[0], path)
    index = optional_number(row, "usdIndexPrice", path)
    if index is None or index <= 0:
        raise ExchangeDataError(f"{path}.usdIndexPrice: no USD index price (not a collateral coin)")
    return index, optional_number(row, "lastPrice", path)
