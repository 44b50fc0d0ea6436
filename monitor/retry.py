"""The one back-off policy: a venue request retried within a fetch, a mark stream reconnecting,
a sink retried by the outbox sender.

Pure standard library and below the adapters and the outbox sender in the layering, so every one
of them uses this class; each keeps its own preset (`FETCH_RETRY`, the mark streams' and the MQTT
publisher's `RECONNECT`, `DELIVERY_RETRY`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: wait `initial` after the first failure, doubling up to `maximum`.

    `attempts` bounds the tries of one request (0: no bound, the caller decides when to stop);
    `max_wait` is the longest wait the other side asks for (Retry-After, a ban window) that is sat
    out rather than handed to the caller; `attempt_timeout` bounds one try (None: the caller's)."""

    initial: timedelta
    maximum: timedelta
    attempts: int = 0
    max_wait: timedelta = timedelta(0)
    attempt_timeout: timedelta | None = None

    def delay(self, failures: int, retry_after: float | None = None) -> timedelta:
        """The wait after the `failures`-th failed try (1 = first failure). The other side's
        `retry_after` (seconds) wins when it is longer than our back-off (it knows its limit)."""
        exponent = max(0, failures - 1)
        # Cap the exponent before multiplying: 2**exponent overflows timedelta long before
        # anyone has retried for a day.
        wait = min(self.initial * (1 << min(exponent, 30)), self.maximum)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, timedelta(seconds=retry_after))
        return wait
