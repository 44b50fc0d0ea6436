"""The log sink: every alert written to the daemon's log (journald under systemd); the demo's sink."""

from __future__ import annotations

import logging

from monitor.domain.notification import Notification, Severity
from monitor.notify.base import fact_lines

LOG_LEVEL = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.CRITICAL: logging.ERROR,
    Severity.EMERGENCY: logging.CRITICAL,
}


class ConsoleSink:
    """Logs one line per notification on the `monitor.alerts` logger; it cannot fail."""

    def __init__(self, name: str = "console", logger: logging.Logger | None = None) -> None:
        self._name = name
        self._logger = logger or logging.getLogger("monitor.alerts")

    @property
    def name(self) -> str:
        """The sink name ("console")."""
        return self._name

    async def send(self, notification: Notification) -> None:
        """Log the notification at a level matching its severity."""
        details = (
            " | ".join([notification.text, *fact_lines(notification)])
            if notification.text
            else " | ".join(fact_lines(notification))
        )
        self._logger.log(
            LOG_LEVEL[notification.severity],
            "[%s] %s %s: %s%s",
            notification.severity.value.upper(),
            notification.kind.value,
            notification.account,
            notification.title,
            f" | {details}" if details else "",
            extra={"notification_id": notification.id, "account": notification.account},
        )
