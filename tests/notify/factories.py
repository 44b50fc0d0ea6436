"""Notifications and sink settings for the notify tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.config.notify import WebhookSettings
from monitor.domain.notification import Notification, NotificationKind, Severity


def notification(
    *,
    id: str = "main:margin_ratio:critical:firing:1763715600",
    account: str = "main",
    kind: NotificationKind = NotificationKind.FIRING,
    severity: Severity = Severity.CRITICAL,
    **facts: str | float | None,
) -> Notification:
    """A critical margin alert on account "main" with realistic facts (override any of them)."""
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
        created_at=datetime(2025, 11, 21, 9, 0, tzinfo=UTC),
        facts=base_facts,
    )


def webhook(kind: str, **keys: Any) -> WebhookSettings:
    """Validated settings for one webhook of `kind`."""
    return WebhookSettings.model_validate({"kind": kind, **keys})
