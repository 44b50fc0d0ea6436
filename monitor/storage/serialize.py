"""Notifications as JSON outbox payloads and back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.errors import StorageRefused


def notification_to_payload(notification: Notification) -> dict[str, Any]:
    """The notification as plain JSON data (times as ISO-8601 with offset)."""
    return {
        "id": notification.id,
        "account": notification.account,
        "rule": notification.rule,
        "kind": notification.kind.value,
        "severity": notification.severity.value,
        "title": notification.title,
        "text": notification.text,
        "created_at": notification.created_at.isoformat(),
        "facts": dict(notification.facts),
    }


def notification_from_payload(payload: Any) -> Notification:
    """The notification an outbox payload was made from."""
    try:
        created_at = datetime.fromisoformat(payload["created_at"])
        return Notification(
            id=str(payload["id"]),
            account=str(payload["account"]),
            rule=str(payload["rule"]),
            kind=NotificationKind(payload["kind"]),
            severity=Severity(payload["severity"]),
            title=str(payload["title"]),
            text=str(payload["text"]),
            created_at=created_at,
            facts=dict(payload.get("facts") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StorageRefused(f"outbox payload is not a notification: {exc}") from exc
