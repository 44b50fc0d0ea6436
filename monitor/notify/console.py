"""The log sink: every alert written to the daemon's log (journald under systemd); the demo's sink."""

from __future__ import annotations

import logging

from monitor.domain.notification import Notification, Severity
from monitor.notify.base import fact_lines, is_good_news

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
        """Log the notification at a level matching its severity (resolved notices at INFO)."""
        details = (
            " | ".join([notification.text, *fact_lines(notification)])
            if notification.text
            else " | ".join(fact_lines(notification))
        )
        # A resolved notice is good news: at the alert's own level it would read (and page
        # journald watchers) like the alert itself.
        level = logging.INFO if is_good_news(notification) else LOG_LEVEL[notification.severity]
        self._logger.log(
            level,
            "[%s] %s %s: %s%s",
            notification.severity.value.upper(),
            notification.kind.value,
            notification.account,
            notification.title,
            f" | {details}" if details else "",
            extra={"notification_id": notification.id, "account": notification.account},
        )
