"""Request budgets as the venues enforce them: Binance IP weight per minute, Bybit IP and per-key counts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.simulator.scenario import Limits


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may pass; `retry_after` (seconds) is set when it may not."""

    allowed: bool
    used: int
    retry_after: float | None = None
    banned: bool = False


class BinanceWeights:
    """Weight used per IP and API family (fapi, dapi, sapi) in the current clock minute."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._used: dict[tuple[str, str, int], int] = {}
        self._rejected: dict[tuple[str, str, int], int] = {}
        self._banned_until: dict[str, float] = {}

    def charge(self, ip: str, family: str, weight: int, now: float) -> Verdict:
        """Count `weight` against the IP's budget at epoch second `now`."""
        minute = int(now // 60)
        self._forget_before(minute)
        key = (ip, family, minute)
        used = self._used.get(key, 0) + weight
        self._used[key] = used
        banned_until = self._banned_until.get(ip, 0.0)
        if now < banned_until:
            return Verdict(False, used, math.ceil(banned_until - now), banned=True)
        limit = self._limit(family)
        if limit == 0 or used <= limit:
            return Verdict(True, used)
        rejected = self._rejected.get(key, 0) + 1
        self._rejected[key] = rejected
        # Binance bans IPs that keep sending after 429s instead of backing off.
        if rejected > self._limits.binance_ban_after:
            self._banned_until[ip] = now + self._limits.binance_ban_seconds
            return Verdict(False, used, math.ceil(self._limits.binance_ban_seconds), banned=True)
        return Verdict(False, used, max(1, math.ceil((minute + 1) * 60 - now)))

    def _forget_before(self, minute: int) -> None:
        # Only the current minute counts; older windows would otherwise pile up for ever.
        if any(key[2] < minute for key in self._used):
            self._used = {k: v for k, v in self._used.items() if k[2] >= minute}
            self._rejected = {k: v for k, v in self._rejected.items() if k[2] >= minute}

    def _limit(self, family: str) -> int:
        if family == "sapi":
            return self._limits.binance_sapi_weight_per_minute
        return self._limits.binance_weight_per_minute


class BybitCounters:
    """Bybit's IP limit (requests per 5 s window) and per-key limit (per endpoint per second)."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._ip: dict[tuple[str, int], int] = {}
        self._uid: dict[tuple[str, str, int], int] = {}

    def charge_ip(self, ip: str, now: float) -> Verdict:
        """Count one request from `ip`; over the limit Bybit answers HTTP 403."""
        window = int(now // 5)
        if any(key[1] < window for key in self._ip):
            self._ip = {k: v for k, v in self._ip.items() if k[1] >= window}
        used = self._ip.get((ip, window), 0) + 1
        self._ip[(ip, window)] = used
        limit = self._limits.bybit_ip_requests_per_5s
        if limit and used > limit:
            return Verdict(False, used, max(1, math.ceil((window + 1) * 5 - now)))
        return Verdict(True, used)

    def charge_key(self, api_key: str, path: str, now: float) -> Verdict:
        """Count one request of `api_key` on `path` in the current second."""
        second = int(now)
        if any(key[2] < second for key in self._uid):
            self._uid = {k: v for k, v in self._uid.items() if k[2] >= second}
        used = self._uid.get((api_key, path, second), 0) + 1
        self._uid[(api_key, path, second)] = used
        limit = self._limits.bybit_uid_requests_per_second
        if limit and used > limit:
            return Verdict(False, used, 1)
        return Verdict(True, used)

    @property
    def key_limit(self) -> int:
        """Requests per second per key and endpoint."""
        return self._limits.bybit_uid_requests_per_second
