"""Pushover messages API. Emergency alerts use priority 2, which repeats the alarm every
`emergency_retry` until the user acknowledges it or `emergency_expire` passes. They carry a tag
per account and rule, so the resolved notice can stop an alarm nobody acknowledged: otherwise the
phone keeps ringing every minute for up to `emergency_expire` after the danger passed."""

from __future__ import annotations

from datetime import timedelta

import httpx

from monitor.domain.notification import Notification, NotificationKind, Severity
from monitor.errors import SinkRefused
from monitor.notify.base import is_good_news, plain_text, truncate
from monitor.notify.http.transport import HttpSink, HttpTransport, json_object, raise_for_status
from monitor.notify.pushover.settings import PushoverSettings

API_URL = "https://api.pushover.net/1/messages.json"
MESSAGE_LIMIT = 1024
TITLE_LIMIT = 250
PRIORITY = {Severity.INFO: -1, Severity.WARNING: 0, Severity.CRITICAL: 1, Severity.EMERGENCY: 2}
EMERGENCY_RETRY = timedelta(seconds=60)
EMERGENCY_EXPIRE = timedelta(hours=1)


def priority(notification: Notification) -> int:
    """The Pushover priority: by severity; resolved notices and tests are normal (0)."""
    return 0 if is_good_news(notification) else PRIORITY[notification.severity]


def alarm_tag(notification: Notification) -> str:
    """The Pushover tag of one account's emergency alarm for one rule (letters, digits, - and _)."""
    raw = f"portfolio-monitor-{notification.account}-{notification.rule}"
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in raw)


def _errors(response: httpx.Response) -> str:
    errors = json_object(response).get("errors")
    return "; ".join(str(error) for error in errors) if isinstance(errors, list) else ""


class PushoverSink(HttpSink):
    """Pushes the alert to one user (or group) key."""

    def __init__(self, name: str, settings: PushoverSettings, http: HttpTransport) -> None:
        super().__init__(name, settings.timeout, http)
        self._url = settings.api_url or API_URL
        self._receipts_url = self._url.rsplit("/", 1)[0] + "/receipts/cancel_by_tag"
        self._token = settings.token.get_secret_value()
        self._user = settings.user.get_secret_value()
        self._retry = settings.emergency_retry or EMERGENCY_RETRY
        self._expire = settings.emergency_expire or EMERGENCY_EXPIRE

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise `DeliveryError`."""
        level = priority(notification)
        form = {
            "token": self._token,
            "user": self._user,
            "title": truncate(notification.title, TITLE_LIMIT),
            "message": truncate(
                plain_text(notification, with_title=False) or notification.title, MESSAGE_LIMIT
            ),
            "priority": str(level),
            "timestamp": str(int(notification.created_at.timestamp())),
        }
        if level == 2:
            form["retry"] = str(int(self._retry.total_seconds()))
            form["expire"] = str(int(self._expire.total_seconds()))
            form["tags"] = alarm_tag(notification)
        if notification.kind is NotificationKind.RESOLVED:
            # Before the notice, so a failed cancel is retried without sending the notice twice.
            # Every resolved notice cancels: an emergency may have eased (silently) to a lower
            # severity before it resolved.
            cancel = f"{self._receipts_url}/{alarm_tag(notification)}.json"
            self._check(await self._post(cancel, data={"token": self._token}))
        self._check(await self._post(self._url, data=form))

    def _check(self, response: httpx.Response) -> None:
        if 400 <= response.status_code < 500 and response.status_code != 429:
            # Pushover: a 4xx means the token, user key or message is invalid; do not retry.
            raise SinkRefused(
                f"{self._name}: HTTP {response.status_code}: {_errors(response) or 'rejected'}"
            )
        raise_for_status(self._name, response)
