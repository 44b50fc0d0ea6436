"""Discord execute-webhook: `{"content": ...}`, 2000 characters; 404 means the webhook was
deleted, 429 comes with `retry_after` in the JSON body."""

from __future__ import annotations

import httpx

from monitor.domain.notification import Notification
from monitor.errors import SinkRefused, SinkUnavailable
from monitor.notify.base import headline, plain_text, truncate
from monitor.notify.discord.settings import DiscordSettings
from monitor.notify.http.transport import (
    HttpSink,
    HttpTransport,
    json_object,
    raise_for_status,
    retry_after_seconds,
)

MESSAGE_LIMIT = 2000


class DiscordSink(HttpSink):
    """Posts the alert as one message; mentions are disabled so a symbol never pings anyone."""

    def __init__(self, name: str, settings: DiscordSettings, http: HttpTransport) -> None:
        super().__init__(name, settings.timeout, http)
        self._url = settings.url.get_secret_value()

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise `DeliveryError`."""
        text = f"**{headline(notification)}**\n" + plain_text(notification, with_title=False)
        body = {"content": truncate(text, MESSAGE_LIMIT), "allowed_mentions": {"parse": []}}
        response = await self._post(self._url, json=body)
        if response.status_code == 429:
            raise SinkUnavailable(
                f"{self._name}: rate limited (HTTP 429)", retry_after=self._retry_after(response)
            )
        if response.status_code == 404:
            raise SinkRefused(f"{self._name}: the webhook does not exist any more (HTTP 404)")
        # Discord explains a refusal in JSON: {"message": "Invalid Webhook Token", "code": 50027}.
        detail = "" if response.is_success else str(json_object(response).get("message") or "")
        raise_for_status(self._name, response, detail[:200])

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        value = json_object(response).get("retry_after")
        # Discord documents seconds (a float) in the body; the header is the fallback.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return retry_after_seconds(response)
