"""Notifications and sink settings for the notify tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, get_args

from pydantic import BaseModel

from monitor.domain.model import (
    AccountRisk,
    AccountState,
    MarginMode,
    Position,
    PositionRisk,
    Side,
    Snapshot,
    Tier,
    Venue,
)
from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.retry import RetryPolicy

Settings = TypeVar("Settings", bound=BaseModel)


def notification(
    *,
    id: str = "main:margin_ratio:critical:firing:1763715600",
    account: str = "main",
    kind: NotificationKind = NotificationKind.FIRING,
    severity: Severity = Severity.CRITICAL,
    created_at: datetime | None = None,
    **facts: str | float | None,
) -> Notification:
    """A critical margin alert on account "main" with realistic facts (override any of them);
    created at 2025-11-21 09:00 UTC (the ManualClock's start) unless `created_at` is given."""
    base_facts: dict[str, str | float | None] = {
        "margin_ratio": 1.42,
        "exchange_margin_ratio": 1 / 1.42,
        "equity": 1234.5,
        "asset": "USDT",
        "account_liquidation_move": -0.077,
        "nearest_liquidation_symbol": "BTCUSDT",
        "nearest_liquidation_price": 51234.5,
        "distance_to_liquidation": 0.118,
    }
    base_facts.update(facts)
    return Notification(
        id=id,
        account=account,
        rule="margin_ratio",
        kind=kind,
        severity=severity,
        title="main: margin ratio 142 % fell below the critical level 150 %",
        text="Account main (binance-usdm) is getting close to liquidation.",
        created_at=created_at or datetime(2025, 11, 21, 9, 0, tzinfo=UTC),
        facts=base_facts,
    )


def webhook(model: type[Settings], **keys: Any) -> Settings:
    """Validated settings of one webhook sink, `kind` filled in from its model."""
    kind = get_args(model.model_fields["kind"].annotation)[0]
    return model.model_validate({"kind": kind, **keys})


def snapshot(account: str = "main", *, margin_ratio: float | None = 2.5) -> Snapshot:
    """A one-position binance-usdm snapshot whose cross pool is at `margin_ratio`."""
    maintenance = 400.0
    equity = maintenance * margin_ratio if margin_ratio is not None else 1000.0
    position = Position(
        symbol="BTCUSDT",
        side=Side.LONG,
        margin_mode=MarginMode.CROSS,
        quantity=0.5,
        entry_price=60000.0,
        mark_price=58000.0,
        tiers=(Tier(0.0, None, 0.004),),
    )
    risk = AccountRisk(
        equity=equity,
        maintenance_margin=maintenance,
        margin_ratio=margin_ratio,
        exchange_margin_ratio=1 / margin_ratio if margin_ratio else None,
        account_liquidation_move=-0.077,
        positions=(
            PositionRisk(
                symbol="BTCUSDT",
                side=Side.LONG,
                margin_mode=MarginMode.CROSS,
                notional=29000.0,
                unrealized_pnl=-1000.0,
                maintenance_margin=maintenance,
                liquidation_price=53534.0,
                distance_to_liquidation=0.077,
            ),
        ),
    )
    state = AccountState(venue=Venue.BINANCE_USDM, wallet_balance=2000.0, positions=(position,))
    return Snapshot(
        account=account, taken_at=datetime(2025, 11, 21, 9, 0, tzinfo=UTC), state=state, risk=risk
    )


def quick_reconnect(maximum: float) -> RetryPolicy:
    """The MQTT publisher's back-off shrunk for tests: 0.1 s doubling up to `maximum` seconds."""
    return RetryPolicy(initial=timedelta(seconds=0.1), maximum=timedelta(seconds=maximum))
