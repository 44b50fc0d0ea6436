"""What an alert tells a person: the message every notification sink delivers."""

from __future__ import annotations

from dataclasses import field
from datetime import datetime
from enum import StrEnum

from monitor.domain.immutable import immutable


class Severity(StrEnum):
    """How urgent an alert is; a higher severity inhibits lower ones for the same account."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        """0 for info up to 3 for emergency, for comparisons."""
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2, Severity.EMERGENCY: 3}


class NotificationKind(StrEnum):
    """Why a notification is sent."""

    FIRING = "firing"  # an alert started firing (or escalated)
    REPEAT = "repeat"  # still firing after the repeat interval
    RESOLVED = "resolved"  # the condition cleared past its clear level
    TEST = "test"  # `portfolio-monitor test-notify`
    SYSTEM = "system"  # about the monitor itself (a sink was disabled, ...)


@immutable
class Notification:
    """One message to deliver to every sink.

    `id` is stable across retries and restarts, so receivers can drop duplicates (delivery is
    at-least-once). `title` and `text` are plain words a trader understands at 3 a.m.; `facts`
    carries the numbers (margin_ratio, exchange_margin_ratio, equity, account_liquidation_move,
    nearest_liquidation_price, nearest_liquidation_symbol, distance_to_liquidation, ...) for
    machine-readable sinks (JSON webhook, MQTT).
    """

    id: str
    account: str
    rule: str
    kind: NotificationKind
    severity: Severity
    title: str
    text: str
    created_at: datetime
    facts: dict[str, str | float | None] = field(default_factory=dict)
