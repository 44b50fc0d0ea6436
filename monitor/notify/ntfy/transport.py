"""ntfy: JSON published to the server root, with a priority per severity and an optional
access token."""

from __future__ import annotations

from typing import Any

from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.notify.base import is_good_news, plain_text
from monitor.notify.http.transport import HttpSink, HttpTransport, json_object, raise_for_status
from monitor.notify.ntfy.settings import NtfySettings

SERVER = "https://ntfy.sh"
# ntfy priorities: 1 min, 2 low, 3 default, 4 high, 5 max (breaks through Do Not Disturb).
PRIORITY = {Severity.INFO: 2, Severity.WARNING: 3, Severity.CRITICAL: 4, Severity.EMERGENCY: 5}
TAGS = {
    Severity.INFO: ["information_source"],
    Severity.WARNING: ["warning"],
    Severity.CRITICAL: ["rotating_light"],
    Severity.EMERGENCY: ["rotating_light", "sos"],
}


def priority(notification: Notification) -> int:
    """The ntfy priority: by severity; resolved notices and tests at the default level."""
    return 3 if is_good_news(notification) else PRIORITY[notification.severity]


class NtfySink(HttpSink):
    """Publishes the alert to one topic."""

    def __init__(self, name: str, settings: NtfySettings, http: HttpTransport) -> None:
        super().__init__(name, settings.timeout, http)
        self._url = settings.server or SERVER
        self._topic = settings.topic
        self._token = settings.token.get_secret_value() if settings.token else None

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise `DeliveryError`."""
        tags = (
            ["white_check_mark"]
            if notification.kind is NotificationKind.RESOLVED
            else TAGS[notification.severity]
        )
        message: dict[str, Any] = {
            "topic": self._topic,
            "title": notification.title,
            "message": plain_text(notification, with_title=False),
            "priority": priority(notification),
            "tags": tags,
        }
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        response = await self._post(self._url, json=message, headers=headers)
        # ntfy explains a refusal in JSON: {"code": 40301, "error": "forbidden", ...}.
        detail = "" if response.is_success else str(json_object(response).get("error") or "")
        raise_for_status(self._name, response, detail[:200])
