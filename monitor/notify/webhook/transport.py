"""Generic JSON webhook: our own schema, an idempotency key, and an HMAC-SHA256 signature when a
secret is configured, so the receiver can check the sender and drop duplicates."""

from __future__ import annotations

import hashlib
import hmac
import json

from monitor.domain.notification import Notification
from monitor.notify.base import payload
from monitor.notify.http.transport import HttpSink, HttpTransport, raise_for_status
from monitor.notify.webhook.settings import JsonWebhookSettings

SIGNATURE_HEADER = "X-Portfolio-Monitor-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for `body`: "sha256=" + hex HMAC-SHA256 keyed with the secret."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def json_body(notification: Notification) -> dict[str, object]:
    """Our schema: the notification plus the headline numbers at the top level."""
    body = payload(notification)
    for key in ("margin_ratio", "exchange_margin_ratio", "equity", "account_liquidation_move"):
        body[key] = notification.facts.get(key)
    return body


class JsonWebhookSink(HttpSink):
    """POSTs `json_body(notification)`; any 2xx is success."""

    def __init__(self, name: str, settings: JsonWebhookSettings, http: HttpTransport) -> None:
        super().__init__(name, settings.timeout, http)
        self._url = settings.url.get_secret_value()
        self._secret = settings.secret.get_secret_value().encode() if settings.secret else None
        self._headers = dict(settings.headers or {})

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise `DeliveryError`."""
        body = json.dumps(json_body(notification), separators=(",", ":")).encode()
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: notification.id,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        response = await self._post(self._url, content=body, headers=headers)
        raise_for_status(self._name, response)
