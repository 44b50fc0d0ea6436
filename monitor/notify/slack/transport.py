"""Slack incoming webhook: `{"text": ...}`; a 4xx means the hook is bad or revoked (permanent),
5xx and timeouts are retried. Workflow webhooks and Slack-compatible servers may instead answer
200 with `{"ok": false, "error": ...}`, which is a failure too."""

from __future__ import annotations

import httpx

from monitor.domain.notification import Notification
from monitor.errors import SinkRefused, SinkUnavailable
from monitor.notify.base import headline, plain_text, truncate
from monitor.notify.http.transport import (
    HttpSink,
    HttpTransport,
    json_object,
    raise_for_status,
    retry_after_seconds,
)
from monitor.notify.slack.settings import SlackSettings

# Slack truncates longer messages itself; cutting them here keeps the ending visible.
MESSAGE_LIMIT = 40000
# Error codes in a 200 body that clear up by themselves; any other code needs a human.
RETRYABLE_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)


def escape(text: str) -> str:
    """Text for Slack's mrkdwn: `<`, `>` and `&` are control characters there (`<!channel>`
    pings everyone, `<url|label>` is a link), so an account name or symbol must not carry them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackSink(HttpSink):
    """Posts the alert as one message with a bold headline."""

    def __init__(self, name: str, settings: SlackSettings, http: HttpTransport) -> None:
        super().__init__(name, settings.timeout, http)
        self._url = settings.url.get_secret_value()

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise `DeliveryError`."""
        text = f"*{escape(headline(notification))}*\n" + escape(
            plain_text(notification, with_title=False)
        )
        response = await self._post(self._url, json={"text": truncate(text, MESSAGE_LIMIT)})
        if response.is_success:
            self._raise_for_body(response)
            return
        # Slack answers errors with a short plain-text code (invalid_token, no_service, ...).
        raise_for_status(self._name, response, response.text[:100])

    def _raise_for_body(self, response: httpx.Response) -> None:
        body = json_object(response)
        if body.get("ok") is not False:
            return
        error = str(body.get("error") or "unknown error")[:100]
        message = f"{self._name}: Slack refused the message: {error}"
        if error in RETRYABLE_ERRORS:
            raise SinkUnavailable(message, retry_after=retry_after_seconds(response))
        raise SinkRefused(message)
