"""The errors of configuration, storage, leases and delivery: the part of the project's one error
tree that is not the domain's (the whole tree is drawn in `monitor.domain.errors`).

Below the ports in the layering, so the ports, the poll cycle, the outbox sender and every
adapter can raise and catch them; the domain never sees them.
"""

from __future__ import annotations

from monitor.domain.errors import MonitorError, PermanentError, RetryableError


class ConfigError(PermanentError):
    """The configuration is wrong; the message names the key path or file."""


class StorageError(MonitorError):
    """Area base: the database could not do what was asked (never raised itself)."""


class StorageUnavailable(StorageError, RetryableError):
    """The database refused or failed an operation that may work later (disk full, locked,
    read-only, connection lost): the daemon holds what it could not write (`monitor.outage`)."""


class StorageRefused(StorageError, PermanentError):
    """The operation cannot work as asked (a bad URL, a missing file, a closed store, a value the
    database cannot hold): trying it again will not help."""


class DatabaseInUse(StorageRefused):
    """Another daemon holds the SQLite database's writer lock; `holder` says "pid N on HOST"."""

    def __init__(self, message: str, *, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseLost(PermanentError):
    """Several daemons on one PostgreSQL: another daemon holds this account's lease now, so this
    one must not store its cycle nor send its alerts (not a storage failure: nothing is held)."""


class DeliveryError(MonitorError):
    """Area base: a notification sink failed (never raised itself)."""


class SinkUnavailable(DeliveryError, RetryableError):
    """The sink failed this time (network, 5xx, rate limit, broker down): the message is retried
    after the back-off, or after the sink's own `retry_after`."""


class MessageRejected(SinkUnavailable):
    """The sink works but refused this one message for a reason not known to be final (Telegram's
    "Bad Request" of a new kind): it is retried a few times, then given up on its own so that it
    does not hold every later alert to that sink behind it."""


class SinkRefused(DeliveryError, PermanentError):
    """The sink will keep failing until a human fixes it (revoked token, deleted webhook, 404)."""
