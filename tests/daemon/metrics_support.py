"""Snapshots and readings for the Prometheus metrics tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from monitor.domain.margin import assess
from monitor.domain.model import AccountState, MarginMode, Position, Side, Snapshot, Tier, Venue
from monitor.domain.volatility import SymbolVolatility
from monitor.metrics import Metrics

TIERS = (Tier(floor=0, cap=None, mmr=0.01),)
BTC = SymbolVolatility("BTCUSDT", 0.01, 0.03)


def longs(*symbols: str, wallet: float = 20.0) -> Snapshot:
    """Account "main" holding one cross long of each symbol (1 at 100, marked at 95)."""
    positions = tuple(
        Position(
            symbol=symbol,
            side=Side.LONG,
            margin_mode=MarginMode.CROSS,
            quantity=1.0,
            entry_price=100.0,
            mark_price=95.0,
            tiers=TIERS,
        )
        for symbol in symbols
    )
    state = AccountState(venue=Venue.BINANCE_USDM, wallet_balance=wallet, positions=positions)
    return Snapshot("main", datetime(2026, 11, 21, tzinfo=UTC), state, assess(state))


def with_volatility(snapshot: Snapshot, *entries: SymbolVolatility) -> Snapshot:
    """`snapshot` re-assessed with these symbols' sigmas."""
    state = replace(snapshot.state, volatility=entries)
    return replace(snapshot, state=state, risk=assess(state))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    """The value of one series, None when it does not exist."""
    return metrics.registry.get_sample_value(name, labels)
