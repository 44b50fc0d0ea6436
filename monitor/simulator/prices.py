"""Price paths: a seeded random walk per feed times the scenario's scripted moves.

A price is a pure function of the seconds elapsed since the scenario started, so every account (and
every test run with the same seed) sees the same market whatever order it is queried in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from monitor.simulator.scenario import Feed, Move

# The walk is generated in chunks of this many steps, each from its own seed, so a long run keeps
# only a few chunks and one level per chunk in memory instead of every step since the start.
_CHUNK = 1024
_KEPT_CHUNKS = 4


class PricePaths:
    """Feed prices over scenario time."""

    def __init__(
        self, feeds: Mapping[str, Feed], moves: tuple[Move, ...], seed: int, step: float
    ) -> None:
        self._feeds = dict(feeds)
        self._moves = {name: tuple(m for m in moves if name in m.feeds) for name in feeds}
        self._step = step
        self._seed = seed
        # Walk level at the start of every chunk generated so far, per feed.
        self._chunk_levels: dict[str, list[float]] = {name: [0.0] for name in feeds}
        self._chunks: dict[tuple[str, int], list[float]] = {}
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
            low, high = self._level(feed, index), self._level(feed, index + 1)
            level = low + (high - low) * (position - index)
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

    def _level(self, feed: str, index: int) -> float:
        """Sum of the first `index` standard normal increments of the feed's walk."""
        chunk, offset = divmod(index, _CHUNK)
        return self._chunk(feed, chunk)[offset]

    def _chunk(self, feed: str, chunk: int) -> list[float]:
        cached = self._chunks.get((feed, chunk))
        if cached is not None:
            return cached
        levels = self._chunk_levels[feed]
        while len(levels) <= chunk:
            # Walk through the chunks before this one once, to learn where this one starts.
            levels.append(self._generate(feed, len(levels) - 1, levels[-1])[-1])
        values = self._generate(feed, chunk, levels[chunk])[:-1]
        if len(self._chunks) >= _KEPT_CHUNKS * len(self._chunk_levels):
            self._chunks.pop(next(iter(self._chunks)))
        self._chunks[(feed, chunk)] = values
        return values

    def _generate(self, feed: str, chunk: int, start: float) -> list[float]:
        """Levels of one chunk, from its start through the start of the next chunk."""
        rng = random.Random(f"{self._seed}:{feed}:{chunk}")
        values = [start]
        for _ in range(_CHUNK):
            values.append(values[-1] + rng.gauss(0.0, 1.0))
        return values
