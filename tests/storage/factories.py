"""Snapshots, notifications and alert events for storage tests (and the CLI and web tests that
read a stored database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.domain.model import (
    AccountRisk,
    AccountState,
    ExchangeAccountFigures,
    MarginMode,
    Position,
    PositionRisk,
    Side,
    Snapshot,
    Tier,
    Venue,
)
from monitor.domain.notification import Notification, Severity
from tests.notify.factories import notification as alert

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIERS = (Tier(0.0, 50_000.0, 0.004, 0.0), Tier(50_000.0, None, 0.005, 50.0))


def snapshot(
    account: str = "main",
    taken_at: datetime = T0,
    *,
    positions: int = 2,
    mark: float = 58_000.0,
    margin_ratio: float | None = 3.0,
    liquidation: float | None = 41_000.0,
    quantity: float = 0.5,
    tiers: tuple[Tier, ...] = TIERS,
) -> Snapshot:
    """A cross-margin account snapshot with `positions` positions (BTC long, ETH short, ...)."""
    held = []
    computed = []
    for index in range(positions):
        symbol = f"SYM{index}USDT" if index > 1 else ("BTCUSDT", "ETHUSDT")[index]
        side = Side.LONG if index % 2 == 0 else Side.SHORT
        position_mark = mark / (index + 1)
        liq = None if liquidation is None else liquidation / (index + 1)
        held.append(
            Position(
                symbol=symbol,
                side=side,
                margin_mode=MarginMode.CROSS,
                quantity=quantity,
                entry_price=60_000.0 / (index + 1),
                mark_price=position_mark,
                tiers=tiers,
                leverage=20.0,
                exchange_liquidation_price=None if liq is None else liq * 1.001,
            )
        )
        computed.append(
            PositionRisk(
                symbol=symbol,
                side=side,
                margin_mode=MarginMode.CROSS,
                notional=quantity * position_mark,
                unrealized_pnl=side.sign * quantity * (position_mark - 60_000.0 / (index + 1)),
                maintenance_margin=quantity * position_mark * 0.004,
                liquidation_price=liq,
                distance_to_liquidation=None
                if liq is None
                else abs(position_mark - liq) / position_mark,
            )
        )
    state = AccountState(
        venue=Venue.BINANCE_USDM,
        wallet_balance=10_000.0,
        positions=tuple(held),
        reported=ExchangeAccountFigures(
            equity=9_000.0, maintenance_margin=300.0, margin_ratio=0.0333
        ),
    )
    risk = AccountRisk(
        equity=9_000.0,
        maintenance_margin=300.0,
        margin_ratio=margin_ratio,
        exchange_margin_ratio=None if margin_ratio is None else 1 / margin_ratio,
        account_liquidation_move=-0.25,
        positions=tuple(computed),
    )
    return Snapshot(account=account, taken_at=taken_at, state=state, risk=risk)


def series(
    account: str, start: datetime, count: int, every: timedelta, **kwargs: object
) -> list[Snapshot]:
    """`count` snapshots `every` apart."""
    return [snapshot(account, start + every * i, **kwargs) for i in range(count)]  # type: ignore[arg-type]


def notification(number: int = 1, created_at: datetime = T0) -> Notification:
    """Firing margin warning number `number` (its id ends with the number)."""
    return alert(
        id=f"main:margin_ratio:warning:firing:{number}",
        severity=Severity.WARNING,
        created_at=created_at,
    )


@dataclass(frozen=True)
class Event:
    """An alert event as the cycle writer takes it (the engine's `AlertEvent` shape)."""

    rule_key: str
    severity: str
    kind: str
    at: datetime
    title: str = "Margin ratio 142.0 % below the warning level 300 %"
    text: str = "margin ratio 142 % fell below 300 %"
    facts: dict[str, Any] = field(default_factory=lambda: {"margin_ratio": 1.42})
