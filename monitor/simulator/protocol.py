"""What every venue module shares: endpoint descriptions, the call context and error replies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.simulator.market import Market, PoolView, SimAccount
from monitor.simulator.scenario import Instrument


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a handler sees it: query parameters, the authenticated account, and the
    scenario second it is answered at (one request sees one consistent market)."""

    market: Market
    params: Mapping[str, str]
    account: SimAccount | None
    server_ms: int
    elapsed: float

    def mark(self, instrument: Instrument) -> float:
        """Mark price of `instrument` at this request's moment."""
        return self.market.mark(instrument, self.elapsed)

    def pools(self, account: SimAccount) -> list[PoolView]:
        """`account`'s margin pools at this request's moment."""
        return self.market.pools(account, self.elapsed)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A GET endpoint: which venue API family serves it, whether it is signed, its request weight."""

    exchange: str
    family: str
    signed: bool
    handler: Callable[[Call], Any]
    weight: Callable[[Mapping[str, str]], int] = lambda _params: 1


class VenueReply(Exception):
    """A complete HTTP answer other than the handler's success payload (errors, faults)."""

    def __init__(
        self,
        status: int,
        body: str,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {body[:80]}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})


def binance_error(
    status: int, code: int, msg: str, headers: Mapping[str, str] | None = None
) -> VenueReply:
    """Binance's error body: {"code": -1021, "msg": "..."}."""
    return VenueReply(status, json.dumps({"code": code, "msg": msg}), headers=headers)


def bybit_error(
    ret_code: int,
    msg: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    now_ms: int = 0,
) -> VenueReply:
    """Bybit's v5 envelope with a non-zero retCode."""
    body = {"retCode": ret_code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": now_ms}
    return VenueReply(status, json.dumps(body), headers=headers)


def fmt(value: float, decimals: int = 8) -> str:
    """A decimal string as the venues send numbers ("-0.00000000" becomes "0.00000000")."""
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and not text.strip("-0."):
        return text[1:]
    return text


def plain(value: float) -> str:
    """A number without trailing zeros ("0.005", "2000000", "2.5")."""
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


def quantity(value: float, step: float) -> str:
    """A position size with the step's decimals, or more if the size needs them."""
    return fmt(value, max(decimals_of(step), decimals_of(abs(value))))


def decimals_of(step: float) -> int:
    """How many decimals a price tick or quantity step has (0.1 -> 1, 1 -> 0)."""
    text = repr(step)
    if "e-" in text:
        return int(text.split("e-")[1])
    if "." not in text:
        return 0
    fraction = text.split(".")[1].rstrip("0")
    return len(fraction)
