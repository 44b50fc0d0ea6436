"""Price paths: a seeded random walk per feed times the scenario's scripted moves.

A price is a pure function of the seconds elapsed since the scenario started, so every account (and
every test run with the same seed) sees the same market whatever order it is queried in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from monitor.simulator.scenario import Feed, Move


class PricePaths:
    """Feed prices over scenario time."""

    def __init__(
        self, feeds: Mapping[str, Feed], moves: tuple[Move, ...], seed: int, step: float
    ) -> None:
        self._feeds = dict(feeds)
        self._moves = {name: tuple(m for m in moves if name in m.feeds) for name in feeds}
        self._step = step
        self._rngs = {name: random.Random(f"{seed}:{name}") for name in feeds}
        # Cumulative sums of standard normal increments, one per step, grown on demand.
        self._walks: dict[str, list[float]] = {name: [0.0] for name in feeds}
        self._overrides: dict[str, float] = {}

    @property
    def feeds(self) -> tuple[str, ...]:
        """Names of every feed."""
        return tuple(self._feeds)

    def price(self, feed: str, elapsed: float) -> float:
        """Price of `feed` `elapsed` seconds after the start (a fixed override wins if one is set)."""
        if feed in self._overrides:
            return self._overrides[feed]
        spec = self._feeds[feed]
        value = spec.price
        if spec.volatility > 0 and elapsed > 0:
            position = elapsed / self._step
            index = int(position)
            walk = self._walk(feed, index + 1)
            level = walk[index] + (walk[index + 1] - walk[index]) * (position - index)
            value *= math.exp(spec.volatility * math.sqrt(self._step) * level)
        for move in self._moves[feed]:
            value *= move.factor(elapsed)
        return value

    def override(self, feed: str, price: float | None) -> None:
        """Pin `feed` at `price` (None releases it back to its path); for tests and manual play."""
        if feed not in self._feeds:
            raise KeyError(feed)
        if price is None:
            self._overrides.pop(feed, None)
        else:
            self._overrides[feed] = price

    def _walk(self, feed: str, index: int) -> list[float]:
        walk = self._walks[feed]
        rng = self._rngs[feed]
        while len(walk) <= index:
            walk.append(walk[-1] + rng.gauss(0.0, 1.0))
        return walk
