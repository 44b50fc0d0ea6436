"""Which accounts a mark recomputes: exactly those on its stream holding its symbol, as their
last full fetch left them (the index from symbol to accounts follows holdings and detaches)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from monitor.live import LiveMarks
from monitor.ports import MarkListener, MarkUpdate

AT = datetime(2026, 12, 5, tzinfo=UTC)


class FakeService:
    """The recomputes asked for, by account."""

    def __init__(self) -> None:
        self.recomputed: list[str] = []

    async def recompute(
        self,
        name: str,
        marks: Mapping[str, float],
        *,
        max_state_age: timedelta,
        stream: str | None = None,
    ) -> None:
        self.recomputed.append(name)


class FakeStream:
    """A mark stream that only remembers what it was asked to follow."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.following: frozenset[str] = frozenset()

    def follow(self, symbols: frozenset[str]) -> None:
        self.following = symbols

    async def run(self, listener: MarkListener) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def fetched(account: str, *symbols: str) -> Any:
    """A full fetch's report, as far as LiveMarks reads it."""
    positions = [SimpleNamespace(symbol=s) for s in symbols]
    return SimpleNamespace(
        account=account,
        live=False,
        by_clock=False,
        started_at=datetime.now(UTC),
        snapshot=SimpleNamespace(state=SimpleNamespace(positions=positions)),
    )


async def test_a_mark_recomputes_exactly_the_accounts_holding_it_on_its_stream() -> None:
    service = FakeService()
    live = LiveMarks(
        service,  # type: ignore[arg-type]
        Clock(),
        reconcile=timedelta(seconds=60),
        stale_after=timedelta(seconds=5),
        min_gap=0.0,
    )
    streams: dict[str, FakeStream] = {}

    def opener(key: str) -> Any:
        return lambda: streams.setdefault(key, FakeStream(key))

    try:
        for name, key in (("a", "one"), ("b", "one"), ("c", "one"), ("d", "two")):
            live.attach(name, key, timedelta(seconds=10), opener(key))
        live.health("one", True, "streaming")
        live.health("two", True, "streaming")
        live.cycle_finished(fetched("a", "BTCUSDT", "ETHUSDT"))
        live.cycle_finished(fetched("b", "ETHUSDT"))
        live.cycle_finished(fetched("c", "SOLUSDT"))
        live.cycle_finished(fetched("d", "BTCUSDT"))
        assert streams["one"].following == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}

        async def marks(key: str, *symbols: str) -> list[str]:
            service.recomputed.clear()
            live.marks(key, [MarkUpdate(symbol=s, price=100.0, at=AT) for s in symbols])
            await asyncio.sleep(0.05)
            return sorted(service.recomputed)

        # Two symbols of one account in one update: one recompute, not two.
        assert await marks("one", "BTCUSDT", "ETHUSDT") == ["a", "b"]
        assert await marks("two", "BTCUSDT") == ["d"]
        assert await marks("one", "SOLUSDT") == ["c"]

        # Holdings change with the next full fetch; a detached account is not recomputed.
        live.cycle_finished(fetched("b", "SOLUSDT"))
        assert await marks("one", "ETHUSDT") == ["a"]
        assert await marks("one", "SOLUSDT") == ["b", "c"]
        live.detach("c")
        assert await marks("one", "SOLUSDT") == ["b"]
        assert streams["one"].following == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
        live.detach("b")
        assert streams["one"].following == {"BTCUSDT", "ETHUSDT"}
        assert await marks("one", "SOLUSDT") == []
    finally:
        await live.close()
