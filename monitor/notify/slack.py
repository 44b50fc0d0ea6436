"""Slack incoming webhook: `{"text": ...}`; a 4xx means the hook is bad or revoked (permanent),
5xx and timeouts are retried."""

from __future__ import annotations

from monitor.config.notify import WebhookSettings
from monitor.domain.notification import Notification
from monitor.notify.base import headline, plain_text, truncate
from monitor.notify.http import HttpSink, HttpTransport, raise_for_status

# Slack truncates longer messages itself; cutting them here keeps the ending visible.
MESSAGE_LIMIT = 40000


class SlackSink(HttpSink):
    """Posts the alert as one message with a bold headline."""

    def __init__(self, name: str, settings: WebhookSettings, http: HttpTransport) -> None:
        assert settings.url is not None
        super().__init__(name, settings, http)
        self._url = settings.url.get_secret_value()

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise `DeliveryError`."""
        text = f"*{headline(notification)}*\n" + plain_text(notification, with_title=False)
        response = await self._post(self._url, json={"text": truncate(text, MESSAGE_LIMIT)})
        # Slack answers errors with a short plain-text code (invalid_token, no_service, ...).
        raise_for_status(
            self._name, response, response.text[:100] if not response.is_success else ""
        )
