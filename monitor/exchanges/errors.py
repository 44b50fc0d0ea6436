"""Translation of ccxt and transport failures into the project's error tree.

The rest of the project decides by the class alone (`RetryableError` or `PermanentError`); only
this module knows ccxt's hierarchy.
"""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp
import ccxt.async_support as ccxt

from monitor.domain.errors import (
    ExchangeAuthError,
    ExchangeDataError,
    ExchangeUnavailable,
    MonitorError,
)

# Binance puts the end of an IP ban into the 418 message: "IP banned until 1700000000000."
_BANNED_UNTIL = re.compile(r"banned until (\d{13})")
# Venue codes ccxt leaves as a plain ExchangeError although they are transient: Binance -1000
# unknown error, -1001 disconnected, -1008 server busy (ccxt maps it for USDⓈ-M only, not for
# COIN-M); Bybit 10000 server timeout, 10016 internal error / service restarting.
_TRANSIENT_CODE = re.compile(r'"(?:code|retCode)"\s*:\s*(?:-1000|-1001|-1008|10000|10016)\b')
# A throttled request without Retry-After still must not hammer the venue.
DEFAULT_BAN_SECONDS = 30.0


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the venue asked us to stay away, from Retry-After or a Binance ban message."""
    stamped = getattr(exc, "retry_after", None)
    if isinstance(stamped, int | float):
        return float(stamped)
    match = _BANNED_UNTIL.search(str(exc))
    if match:
        return max(0.0, int(match.group(1)) / 1000.0 - time.time())
    return None


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from the response headers: Retry-After (delta seconds, Binance) or Bybit's
    X-Bapi-Limit-Reset-Timestamp (milliseconds since the epoch)."""
    if not headers:
        return None
    lowered = {str(name).lower(): value for name, value in dict(headers).items()}
    try:
        if "retry-after" in lowered:
            return max(0.0, float(lowered["retry-after"]))
        if "x-bapi-limit-reset-timestamp" in lowered:
            return max(0.0, float(lowered["x-bapi-limit-reset-timestamp"]) / 1000.0 - time.time())
    except (TypeError, ValueError):
        return None
    return None


def is_account_limit(exc: BaseException) -> bool:
    """Bybit's 10006 limits one account (UID), not the address: other accounts may continue."""
    return isinstance(exc, ccxt.RateLimitExceeded) and "10006" in str(exc)


def is_throttled(exc: BaseException) -> bool:
    """The venue refused us for sending too much (429, 418 ban, Bybit 403 / 10006)."""
    return isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded)


def is_clock_skew(exc: BaseException) -> bool:
    """The request's timestamp fell outside the venue's receive window (Binance -1021, Bybit 10002)."""
    return isinstance(exc, ccxt.InvalidNonce)


def translate(exc: BaseException, where: str) -> MonitorError:
    """Our error for a failure of the request described by `where` ("binance-usdm main: positions")."""
    if isinstance(exc, MonitorError):
        return exc
    detail = _short(exc)
    if isinstance(exc, ccxt.AuthenticationError):
        return ExchangeAuthError(f"{where}: the exchange rejected the API key: {detail}")
    if is_throttled(exc):
        wait = retry_after_of(exc)
        return ExchangeUnavailable(
            f"{where}: rate limited or banned by the exchange: {detail}",
            retry_after=wait if wait is not None else DEFAULT_BAN_SECONDS,
        )
    if isinstance(exc, ccxt.OnMaintenance):
        return ExchangeUnavailable(f"{where}: exchange under maintenance: {detail}")
    if isinstance(exc, ccxt.RequestTimeout | TimeoutError):
        return ExchangeUnavailable(f"{where}: request timed out: {detail}")
    if isinstance(exc, ccxt.InvalidNonce):
        return ExchangeUnavailable(f"{where}: clock skew persists after resync: {detail}")
    if isinstance(exc, ccxt.OperationFailed | aiohttp.ClientError | OSError):
        return ExchangeUnavailable(f"{where}: exchange unavailable: {detail}")
    if isinstance(exc, ccxt.ExchangeError) and (
        isinstance(exc.__cause__, aiohttp.ClientError) or _TRANSIENT_CODE.search(str(exc))
    ):
        return ExchangeUnavailable(f"{where}: exchange unavailable: {detail}")
    if isinstance(exc, ccxt.BaseError):
        return ExchangeDataError(f"{where}: the exchange refused the request: {detail}")
    return ExchangeDataError(f"{where}: unexpected failure: {type(exc).__name__}: {detail}")


_QUERY = re.compile(r"\?\S*")


def _short(exc: BaseException) -> str:
    # Signed query strings carry timestamps and signatures: noise in a message, and not ours to show.
    text = _QUERY.sub("?…", str(exc).strip()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
