"""The log sink: every alert written to the daemon's log (journald under systemd); the demo's sink."""

from __future__ import annotations

import logging

from monitor.domain.notification import Notification, Severity
from monitor.notify.base import is_good_news, short_figures, truncate

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
        # A resolved notice is good news: at the alert's own level it would read (and page
        # journald watchers) like the alert itself.
        level = logging.INFO if is_good_news(notification) else LOG_LEVEL[notification.severity]
        self._logger.log(
            level,
            "%s",
            log_line(notification),
            extra={"notification_id": notification.id, "account": notification.account},
        )


LINE_LIMIT = 200
"""Characters per alert line: one terminal or journal line a trader can take in at a glance."""


def log_line(notification: Notification) -> str:
    """One short line: severity, what happened to which account, the crossing, the key figures.

    The full wording (both ratio conventions explained, assumptions, sigmas) goes to the other
    sinks and the database; a log line of ~900 characters was read by nobody.
    """
    account = notification.account
    title = notification.title
    if account and not title.startswith(f"{account}:"):
        title = f"{account}: {title}"
    head = f"[{notification.severity.value.upper()}] {notification.kind.value} {title}"
    # The first sentence says what crossed which level; the rest repeats the figures in words.
    first = notification.text.split(". ", 1)[0].strip().removesuffix(".")
    first = first.removeprefix(f"Account {account}: ")
    figures = short_figures(notification)
    if "margin ratio" in first:
        # The crossing already gives the margin ratio (in both conventions).
        figures = [figure for figure in figures if not figure.startswith("ratio ")]
    while True:
        parts = [head, *([first] if first else []), *([", ".join(figures)] if figures else [])]
        line = " | ".join(parts)
        # Whole figures are dropped from the least essential end: a number is never cut.
        if len(line) <= LINE_LIMIT or not figures:
            return truncate(line, LINE_LIMIT)
        figures.pop()
