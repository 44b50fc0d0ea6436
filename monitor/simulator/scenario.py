"""Scenario files: instruments, price paths, accounts, limits and faults the simulator starts from.

The format is documented in the package docstring (`monitor.simulator`). Every problem is reported as
`InvalidInput` naming the offending field path (`accounts.demo.positions[1].quantity`).
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.domain.errors import InvalidInput
from monitor.domain.model import MarginMode, Side, Venue
from monitor.domain.units import parse_duration, parse_percent

BINANCE = "binance"
BYBIT = "bybit"
# Binance keeps these in the USDⓈ-M wallet; every other coin lives in the COIN-M wallet.
BINANCE_USDM_ASSETS = frozenset({"USDT", "USDC", "FDUSD", "BUSD"})
FAULT_KINDS = (
    "rate_limit",
    "ip_ban",
    "server_error",
    "timeout",
    "malformed_json",
    "timestamp",
    "auth",
    "maintenance",
    "busy",
    "stalled_cursor",
)
_DEFAULT_CAP = 1e12


@dataclass(frozen=True, slots=True)
class Feed:
    """One underlying price series (BTC, ETH, ...) that instruments on every venue follow."""

    name: str
    price: float
    # Standard deviation of the relative price change per second of the seeded random walk.
    volatility: float = 0.0


@dataclass(frozen=True, slots=True)
class Move:
    """A scripted move: the price factor goes linearly to 1 + change over `over` seconds from `at`,
    stays there for `hold` seconds, then returns to 1 over `recover_over` seconds (None: never);
    with `every`, the whole cycle starts again every that many seconds after `at`."""

    feeds: tuple[str, ...]
    at: float
    change: float
    over: float
    hold: float = 0.0
    recover_over: float | None = None
    every: float | None = None

    def factor(self, elapsed: float) -> float:
        """The multiplier this move applies `elapsed` seconds after the scenario started."""
        t = elapsed - self.at
        if t <= 0:
            return 1.0
        if self.every is not None:
            t %= self.every
        if t < self.over:
            return 1.0 + self.change * t / self.over
        t -= self.over
        if t < self.hold or self.recover_over is None:
            return 1.0 + self.change
        t -= self.hold
        if t < self.recover_over:
            return 1.0 + self.change * (1.0 - t / self.recover_over)
        return 1.0


@dataclass(frozen=True, slots=True)
class TierSpec:
    """One bracket / risk-limit row; `deduction` is Binance `cum` / Bybit `mmDeduction`."""

    floor: float
    cap: float
    mmr: float
    max_leverage: float
    deduction: float


@dataclass(frozen=True, slots=True)
class Instrument:
    """A perpetual contract listed on one venue."""

    venue: Venue
    symbol: str
    feed: str
    base: str
    quote: str
    settle: str
    contract_size: float
    tick_size: float
    qty_step: float
    tiers: tuple[TierSpec, ...]
    taker_fee: float

    @property
    def exchange(self) -> str:
        """ "binance" or "bybit"."""
        return self.venue.exchange


@dataclass(frozen=True, slots=True)
class PositionSpec:
    """A position an account holds when the scenario starts."""

    symbol: str
    side: Side
    quantity: float
    entry_price: float
    leverage: float
    margin_mode: MarginMode
    isolated_margin: float | None


@dataclass(frozen=True, slots=True)
class Permissions:
    """What the account's API key may do (reported by Binance apiRestrictions / Bybit query-api)."""

    read: bool = True
    futures: bool = True
    trade: bool = False
    withdraw: bool = False
    transfer: bool = False
    ip_restrict: bool = False


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One exchange account (one API key) with its wallets and positions."""

    name: str
    exchange: str
    api_key: str
    api_secret: str
    hedge: bool
    # Bybit UTA margin mode is account-wide; Binance sets it per position.
    margin_mode: MarginMode
    # How the venue pools the account's margin (ACCOUNT_MODES per exchange, first = default).
    account_mode: str
    wallet: Mapping[str, float]
    positions: tuple[PositionSpec, ...]
    tier_overrides: Mapping[str, tuple[TierSpec, ...]]
    permissions: Permissions
    user_id: int
    # Open conditional orders (stops, take-profits, trailing stops), served, never filled.
    orders: tuple[OrderSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """One resting conditional order, as the scenario writes it (`accounts.NAME.orders`).

    `type`: stop, stop_limit, take_profit or trailing_stop. `quantity` None closes the whole
    position (Binance closePosition, Bybit's Full-mode position TP/SL). `service`: on Binance
    "algo" (the algo-order service) or "classic" (openOrders); on Bybit "position" (the
    position's own TP/SL, Partial mode with a quantity) or "conditional" (a Stop order).
    Trailing stops: `callback_rate` in % (Binance), `distance` in price (Bybit), both with an
    optional `activation_price`.
    """

    symbol: str
    side: str
    type: str
    trigger_price: float | None
    quantity: float | None
    reduce_only: bool
    position_side: Side | None
    service: str
    callback_rate: float | None = None
    distance: float | None = None
    activation_price: float | None = None


ORDER_TYPES = ("stop", "stop_limit", "take_profit", "trailing_stop")
ORDER_SERVICES: Mapping[str, tuple[str, ...]] = {
    "binance": ("algo", "classic"),
    "bybit": ("position", "conditional"),
}


# Binance: one coin per pool, Multi-Assets mode, or a Portfolio Margin account (papi only).
# Bybit: a Unified Trading Account (2.0), a classic (pre-UTA) account the monitor must refuse, or a
# UTA 1.0 whose inverse contracts keep their own contract wallet.
ACCOUNT_MODES: Mapping[str, tuple[str, ...]] = {
    BINANCE: ("single-asset", "multi-assets", "portfolio"),
    BYBIT: ("unified", "classic", "unified-1.0"),
}


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault the venue shows to one account (or to every request when `account` is None)."""

    kind: str
    account: str | None = None
    start: float = 0.0
    duration: float | None = None
    count: int | None = None
    delay: float = 30.0
    retry_after: float = 60.0
    status: int = 502
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Request budgets as the venues document them (0 disables a limit)."""

    binance_weight_per_minute: int = 2400
    binance_sapi_weight_per_minute: int = 12000
    # After this many 429 answers within one minute Binance bans the IP (HTTP 418).
    binance_ban_after: int = 5
    binance_ban_seconds: float = 120.0
    bybit_ip_requests_per_5s: int = 600
    bybit_uid_requests_per_second: int = 50


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything the simulator starts from."""

    name: str
    description: str
    seed: int
    tick: float
    feeds: Mapping[str, Feed]
    moves: tuple[Move, ...]
    instruments: tuple[Instrument, ...]
    accounts: tuple[AccountSpec, ...]
    faults: tuple[FaultSpec, ...] = ()
    limits: Limits = field(default_factory=Limits)
    # Seconds the venue's clock (time endpoints, timestamp checks) runs ahead of this machine's.
    server_time_offset: float = 0.0

    def instrument(self, exchange: str, symbol: str) -> Instrument | None:
        """The instrument `symbol` listed on `exchange`, if any."""
        for instrument in self.instruments:
            if instrument.exchange == exchange and instrument.symbol == symbol:
                return instrument
        return None


def builtin_scenario_path(name: str) -> Path:
    """Path of a scenario shipped with the package ("demo" or "test")."""
    resource = resources.files("monitor.simulator") / "scenarios" / f"{name}.toml"
    return Path(str(resource))


def load_scenario(source: str | Path | Mapping[str, Any]) -> Scenario:
    """A scenario from a TOML/JSON file, a built-in name ("demo", "test") or an already parsed mapping."""
    if isinstance(source, Mapping):
        return parse_scenario(source)
    path = Path(source)
    # A directory of that name (the demo's own state directory "demo") does not hide the built-in.
    if not path.suffix and not path.is_file():
        path = builtin_scenario_path(str(source))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(str(source), f"cannot read scenario file: {exc.strerror}") from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(
            str(path), f"not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}"
        ) from None
    if not isinstance(data, Mapping):
        raise InvalidInput(str(path), "a scenario must be a table/object")
    return parse_scenario(data, default_name=path.stem)


def parse_scenario(data: Mapping[str, Any], *, default_name: str = "scenario") -> Scenario:
    """Validate a parsed scenario document; errors name the field path."""
    _reject_unknown(
        data,
        "",
        {
            "name",
            "description",
            "seed",
            "tick",
            "server_time_offset",
            "feeds",
            "moves",
            "instruments",
            "accounts",
            "faults",
            "limits",
        },
    )
    seed = _int(data.get("seed", 1), "seed")
    tick = _seconds(data.get("tick", "1s"), "tick")
    if tick <= 0:
        raise InvalidInput("tick", "must be > 0")
    feeds = {
        name: _feed(name, raw, f"feeds.{name}")
        for name, raw in _table(data.get("feeds", {}), "feeds").items()
    }
    moves = tuple(
        _move(raw, f"moves[{i}]", feeds)
        for i, raw in enumerate(_list(data.get("moves", []), "moves"))
    )
    instruments = tuple(
        _instrument(raw, f"instruments[{i}]", feeds)
        for i, raw in enumerate(_list(data.get("instruments", []), "instruments"))
    )
    seen: set[tuple[str, str]] = set()
    for i, instrument in enumerate(instruments):
        key = (instrument.exchange, instrument.symbol)
        if key in seen:
            raise InvalidInput(
                f"instruments[{i}].symbol",
                f"{instrument.symbol} listed twice on {instrument.exchange}",
            )
        seen.add(key)
    accounts_raw = _table(data.get("accounts", {}), "accounts")
    accounts = tuple(
        _account(name, raw, f"accounts.{name}", instruments, seed, index)
        for index, (name, raw) in enumerate(accounts_raw.items())
    )
    keys = [account.api_key for account in accounts]
    if len(set(keys)) != len(keys):
        raise InvalidInput("accounts", "two accounts share one api_key")
    faults = tuple(
        _fault(raw, f"faults[{i}]", accounts_raw)
        for i, raw in enumerate(_list(data.get("faults", []), "faults"))
    )
    return Scenario(
        name=str(data.get("name", default_name)),
        description=str(data.get("description", "")),
        seed=seed,
        tick=tick,
        feeds=feeds,
        moves=moves,
        instruments=instruments,
        accounts=accounts,
        faults=faults,
        limits=_limits(data.get("limits", {}), "limits"),
        server_time_offset=_float(data.get("server_time_offset", 0), "server_time_offset"),
    )


def parse_fault(
    raw: Mapping[str, Any], path: str = "fault", accounts: Mapping[str, Any] | None = None
) -> FaultSpec:
    """One fault description (the same keys as a `[[faults]]` entry of a scenario)."""
    return _fault(raw, path, accounts)


def _feed(name: str, raw: Any, path: str) -> Feed:
    table = _table(raw, path)
    _reject_unknown(table, path, {"price", "volatility"})
    price = _positive(_require(table, "price", path), f"{path}.price")
    volatility = _percent(table.get("volatility", 0), f"{path}.volatility")
    if volatility < 0:
        raise InvalidInput(f"{path}.volatility", "must be >= 0")
    return Feed(name=name, price=price, volatility=volatility)


def _move(raw: Any, path: str, feeds: Mapping[str, Feed]) -> Move:
    table = _table(raw, path)
    _reject_unknown(
        table, path, {"feed", "feeds", "at", "change", "over", "hold", "recover_over", "every"}
    )
    names: list[str]
    if "feeds" in table:
        names = [str(name) for name in _list(table["feeds"], f"{path}.feeds")]
    else:
        names = [str(_require(table, "feed", path))]
    if names == ["*"]:
        names = list(feeds)
    for name in names:
        if name not in feeds:
            raise InvalidInput(f"{path}.feed", f"unknown feed {name!r}")
    change = _percent(_require(table, "change", path), f"{path}.change")
    if change <= -1:
        raise InvalidInput(f"{path}.change", "a price cannot fall by 100 % or more")
    over = _seconds(table.get("over", "0s"), f"{path}.over")
    recover = table.get("recover_over")
    hold = _seconds(table.get("hold", "0s"), f"{path}.hold")
    every = None
    if "every" in table:
        every = _seconds(table["every"], f"{path}.every")
        if recover is None:
            raise InvalidInput(f"{path}.every", "a repeating move needs recover_over")
        if every < over + hold + _seconds(recover, f"{path}.recover_over"):
            raise InvalidInput(f"{path}.every", "must be at least over + hold + recover_over")
    return Move(
        feeds=tuple(names),
        at=_seconds(table.get("at", "0s"), f"{path}.at"),
        change=change,
        over=max(over, 1e-9),
        hold=hold,
        recover_over=None
        if recover is None
        else max(_seconds(recover, f"{path}.recover_over"), 1e-9),
        every=every,
    )


def _split_symbol(venue: Venue, symbol: str) -> tuple[str, str, str]:
    """(base, quote, settle) guessed from a venue's symbol naming convention."""
    if venue is Venue.BINANCE_COINM:
        pair = symbol.split("_", 1)[0]
        base = pair.removesuffix("USD")
        return base, "USD", base
    if venue is Venue.BYBIT_INVERSE:
        base = symbol.removesuffix("USD")
        return base, "USD", base
    if symbol.endswith("PERP"):
        return symbol.removesuffix("PERP"), "USDC", "USDC"
    for quote in ("USDT", "USDC"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol.removesuffix(quote), quote, quote
    raise InvalidInput("", f"cannot tell base and quote of {symbol!r}; give base, quote and settle")


def _instrument(raw: Any, path: str, feeds: Mapping[str, Feed]) -> Instrument:
    table = _table(raw, path)
    _reject_unknown(
        table,
        path,
        {
            "venue",
            "symbol",
            "feed",
            "base",
            "quote",
            "settle",
            "contract_size",
            "tick_size",
            "qty_step",
            "tiers",
            "taker_fee",
        },
    )
    venue_text = str(_require(table, "venue", path))
    try:
        venue = Venue(venue_text)
    except ValueError:
        choices = ", ".join(v.value for v in Venue)
        raise InvalidInput(
            f"{path}.venue", f"unknown venue {venue_text!r} (one of {choices})"
        ) from None
    symbol = str(_require(table, "symbol", path))
    try:
        base, quote, settle = _split_symbol(venue, symbol)
    except InvalidInput as exc:
        if not {"base", "quote", "settle"} <= table.keys():
            raise InvalidInput(f"{path}.symbol", exc.problem) from None
        base, quote, settle = "", "", ""
    base = str(table.get("base", base))
    quote = str(table.get("quote", quote))
    settle = str(table.get("settle", settle))
    feed = str(table.get("feed", base))
    if feed not in feeds:
        raise InvalidInput(f"{path}.feed", f"unknown feed {feed!r}")
    default_size = 1.0
    if venue is Venue.BINANCE_COINM:
        default_size = 100.0 if base == "BTC" else 10.0
    contract_size = _positive(table.get("contract_size", default_size), f"{path}.contract_size")
    default_tiers: list[dict[str, Any]] = [{"mmr": "0.5%", "max_leverage": 100}]
    tiers = _tiers(table.get("tiers", default_tiers), f"{path}.tiers")
    taker_default = "0.055%" if venue.exchange == BYBIT else "0"
    return Instrument(
        venue=venue,
        symbol=symbol,
        feed=feed,
        base=base,
        quote=quote,
        settle=settle,
        contract_size=contract_size,
        tick_size=_positive(table.get("tick_size", "0.1"), f"{path}.tick_size"),
        qty_step=_positive(
            table.get("qty_step", "0.001" if not venue.inverse else "1"), f"{path}.qty_step"
        ),
        tiers=tiers,
        taker_fee=_percent(table.get("taker_fee", taker_default), f"{path}.taker_fee"),
    )


def _published(value: float) -> float:
    """`value` to 12 significant digits, as a venue would print it."""
    return float(f"{value:.12g}")


def _tiers(raw: Any, path: str) -> tuple[TierSpec, ...]:
    rows = _list(raw, path)
    if not rows:
        raise InvalidInput(path, "needs at least one tier")
    tiers: list[TierSpec] = []
    floor = 0.0
    deduction = 0.0
    previous_mmr = 0.0
    for i, row_raw in enumerate(rows):
        row_path = f"{path}[{i}]"
        row = _table(row_raw, row_path)
        _reject_unknown(row, row_path, {"cap", "mmr", "max_leverage", "deduction"})
        # Venues publish short decimals (0.0065, cum 950); percent arithmetic leaves binary noise
        # (0.006500000000000001, 950.0000000000002) that would show in every payload.
        mmr = _published(_percent(_require(row, "mmr", row_path), f"{row_path}.mmr"))
        if not 0 < mmr < 1:
            raise InvalidInput(f"{row_path}.mmr", "must be between 0 and 100 %")
        if mmr < previous_mmr:
            raise InvalidInput(f"{row_path}.mmr", "rates must not fall from one tier to the next")
        cap_raw = row.get("cap")
        cap = _DEFAULT_CAP if cap_raw is None else _positive(cap_raw, f"{row_path}.cap")
        if cap <= floor:
            raise InvalidInput(f"{row_path}.cap", "must be above the previous tier's cap")
        if cap_raw is None and i != len(rows) - 1:
            raise InvalidInput(f"{row_path}.cap", "only the last tier may leave the cap open")
        # Binance's recursion cum_n = floor_n * (mmr_n - mmr_{n-1}) + cum_{n-1} keeps MM continuous.
        deduction = _published(deduction + floor * (mmr - previous_mmr)) if i else 0.0
        if "deduction" in row:
            deduction = _float(row["deduction"], f"{row_path}.deduction")
        max_leverage = _positive(
            row.get("max_leverage", max(1.0, math.floor(0.5 / mmr))), f"{row_path}.max_leverage"
        )
        tiers.append(TierSpec(floor, cap, mmr, max_leverage, deduction))
        floor, previous_mmr = cap, mmr
    return tuple(tiers)


def _account(
    name: str,
    raw: Any,
    path: str,
    instruments: tuple[Instrument, ...],
    seed: int,
    index: int,
) -> AccountSpec:
    table = _table(raw, path)
    _reject_unknown(
        table,
        path,
        {
            "exchange",
            "api_key",
            "api_secret",
            "position_mode",
            "margin_mode",
            "account_mode",
            "wallet",
            "positions",
            "tiers",
            "permissions",
            "orders",
        },
    )
    exchange = str(_require(table, "exchange", path))
    if exchange not in (BINANCE, BYBIT):
        raise InvalidInput(f"{path}.exchange", f"unknown exchange {exchange!r} (binance or bybit)")
    mode = str(table.get("position_mode", "one-way"))
    if mode not in ("one-way", "hedge"):
        raise InvalidInput(f"{path}.position_mode", "must be one-way or hedge")
    account_margin = _margin_mode(table.get("margin_mode", "cross"), f"{path}.margin_mode")
    modes = ACCOUNT_MODES[exchange]
    account_mode = str(table.get("account_mode", modes[0]))
    if account_mode not in modes:
        raise InvalidInput(
            f"{path}.account_mode", f"must be one of {', '.join(modes)} on {exchange}"
        )
    wallet = {
        str(asset): _non_negative(amount, f"{path}.wallet.{asset}")
        for asset, amount in _table(table.get("wallet", {}), f"{path}.wallet").items()
    }
    positions: list[PositionSpec] = []
    for i, position_raw in enumerate(_list(table.get("positions", []), f"{path}.positions")):
        position_path = f"{path}.positions[{i}]"
        position = _position(position_raw, position_path, exchange, account_margin, instruments)
        if mode == "one-way" and any(p.symbol == position.symbol for p in positions):
            raise InvalidInput(
                f"{position_path}.symbol",
                f"one-way mode holds one position per symbol ({position.symbol} twice)",
            )
        if mode == "hedge" and any(
            p.symbol == position.symbol and p.side is position.side for p in positions
        ):
            raise InvalidInput(
                f"{position_path}.side", f"hedge mode holds one {position.side} leg per symbol"
            )
        positions.append(position)
    overrides = {
        str(symbol): _tiers(rows, f"{path}.tiers.{symbol}")
        for symbol, rows in _table(table.get("tiers", {}), f"{path}.tiers").items()
    }
    for symbol in overrides:
        if not any(i.exchange == exchange and i.symbol == symbol for i in instruments):
            raise InvalidInput(f"{path}.tiers.{symbol}", f"no instrument {symbol} on {exchange}")
    permissions_table = _table(table.get("permissions", {}), f"{path}.permissions")
    _reject_unknown(permissions_table, f"{path}.permissions", set(Permissions.__dataclass_fields__))
    permissions = Permissions(
        **{
            key: _bool(value, f"{path}.permissions.{key}")
            for key, value in permissions_table.items()
        }
    )
    digest = hashlib.sha256(f"{seed}:{exchange}:{name}".encode()).hexdigest()
    api_key = str(table.get("api_key", ("sim" + digest)[: 64 if exchange == BINANCE else 18]))
    api_secret = str(
        table.get("api_secret", hashlib.sha256(f"secret:{digest}".encode()).hexdigest())
    )
    return AccountSpec(
        name=name,
        exchange=exchange,
        api_key=api_key,
        api_secret=api_secret,
        hedge=mode == "hedge",
        margin_mode=account_margin,
        account_mode=account_mode,
        wallet=wallet,
        positions=tuple(positions),
        tier_overrides=overrides,
        permissions=permissions,
        user_id=10_000_000 + index,
        orders=tuple(
            _order(raw_order, f"{path}.orders[{i}]", exchange, mode == "hedge", positions)
            for i, raw_order in enumerate(_list(table.get("orders", []), f"{path}.orders"))
        ),
    )


def _order(
    raw: Any, path: str, exchange: str, hedge: bool, positions: list[PositionSpec]
) -> OrderSpec:
    table = _table(raw, path)
    _reject_unknown(
        table,
        path,
        {
            "symbol",
            "side",
            "type",
            "trigger_price",
            "quantity",
            "reduce_only",
            "position_side",
            "service",
            "callback_rate",
            "distance",
            "activation_price",
        },
    )
    symbol = str(_require(table, "symbol", path))
    if not any(position.symbol == symbol for position in positions):
        raise InvalidInput(f"{path}.symbol", f"no position in {symbol} to attach an order to")
    side = str(_require(table, "side", path))
    if side not in ("buy", "sell"):
        raise InvalidInput(f"{path}.side", "must be buy or sell")
    kind = str(_require(table, "type", path))
    if kind not in ORDER_TYPES:
        raise InvalidInput(f"{path}.type", f"must be one of {', '.join(ORDER_TYPES)}")
    services = ORDER_SERVICES[exchange]
    service = str(table.get("service", services[0]))
    if service not in services:
        raise InvalidInput(f"{path}.service", f"must be one of {', '.join(services)} on {exchange}")
    position_side: Side | None = None
    if "position_side" in table:
        if not hedge:
            raise InvalidInput(f"{path}.position_side", "only hedge-mode accounts name the leg")
        try:
            position_side = Side(str(table["position_side"]))
        except ValueError:
            raise InvalidInput(f"{path}.position_side", "must be long or short") from None
    elif hedge:
        raise InvalidInput(f"{path}.position_side", "a hedge-mode order names its leg")
    trailing = kind == "trailing_stop"
    trigger = table.get("trigger_price")
    if trigger is None and not trailing:
        raise InvalidInput(f"{path}.trigger_price", "missing")
    quantity = table.get("quantity")
    optional = {
        key: None if table.get(key) is None else _positive(table[key], f"{path}.{key}")
        for key in ("callback_rate", "distance", "activation_price")
    }
    if trailing and optional["callback_rate" if exchange == "binance" else "distance"] is None:
        needed = "callback_rate" if exchange == "binance" else "distance"
        raise InvalidInput(f"{path}.{needed}", "a trailing stop needs it")
    return OrderSpec(
        symbol=symbol,
        side=side,
        type=kind,
        trigger_price=None if trigger is None else _positive(trigger, f"{path}.trigger_price"),
        quantity=None if quantity is None else _positive(quantity, f"{path}.quantity"),
        reduce_only=_bool(table.get("reduce_only", True), f"{path}.reduce_only"),
        position_side=position_side,
        service=service,
        **optional,
    )


def _position(
    raw: Any,
    path: str,
    exchange: str,
    account_margin: MarginMode,
    instruments: tuple[Instrument, ...],
) -> PositionSpec:
    table = _table(raw, path)
    _reject_unknown(
        table,
        path,
        {"symbol", "side", "quantity", "entry_price", "leverage", "margin_mode", "isolated_margin"},
    )
    symbol = str(_require(table, "symbol", path))
    instrument = next(
        (i for i in instruments if i.exchange == exchange and i.symbol == symbol), None
    )
    if instrument is None:
        raise InvalidInput(f"{path}.symbol", f"no instrument {symbol} on {exchange}")
    side_text = str(_require(table, "side", path))
    try:
        side = Side(side_text)
    except ValueError:
        raise InvalidInput(f"{path}.side", "must be long or short") from None
    if exchange == BYBIT:
        if "margin_mode" in table:
            raise InvalidInput(
                f"{path}.margin_mode",
                "Bybit sets the margin mode per account (accounts.NAME.margin_mode)",
            )
        margin_mode = account_margin
    else:
        margin_mode = _margin_mode(table.get("margin_mode", "cross"), f"{path}.margin_mode")
    quantity = _positive(_require(table, "quantity", path), f"{path}.quantity")
    entry = _positive(_require(table, "entry_price", path), f"{path}.entry_price")
    leverage = _positive(table.get("leverage", 10), f"{path}.leverage")
    if exchange != BYBIT and not leverage.is_integer():
        raise InvalidInput(f"{path}.leverage", "Binance leverage is a whole number")
    isolated_margin: float | None = None
    if margin_mode is MarginMode.ISOLATED:
        if instrument.venue.inverse:
            default_margin = quantity * instrument.contract_size / entry / leverage
        else:
            default_margin = quantity * entry / leverage
        isolated_margin = _positive(
            table.get("isolated_margin", default_margin), f"{path}.isolated_margin"
        )
    elif "isolated_margin" in table:
        raise InvalidInput(
            f"{path}.isolated_margin", "only isolated positions hold their own margin"
        )
    return PositionSpec(symbol, side, quantity, entry, leverage, margin_mode, isolated_margin)


def _fault(raw: Any, path: str, accounts: Mapping[str, Any] | None) -> FaultSpec:
    table = _table(raw, path)
    _reject_unknown(
        table,
        path,
        {"kind", "account", "start", "duration", "count", "delay", "retry_after", "status", "path"},
    )
    kind = str(_require(table, "kind", path))
    if kind not in FAULT_KINDS:
        raise InvalidInput(
            f"{path}.kind", f"unknown fault {kind!r} (one of {', '.join(FAULT_KINDS)})"
        )
    account = table.get("account")
    if account is not None and accounts is not None and account not in accounts:
        raise InvalidInput(f"{path}.account", f"no account named {account!r}")
    duration = table.get("duration")
    count = table.get("count")
    status = _int(table.get("status", 502), f"{path}.status")
    if not 500 <= status <= 599:
        raise InvalidInput(f"{path}.status", "a server error status is 5xx")
    return FaultSpec(
        kind=kind,
        account=None if account is None else str(account),
        start=_seconds(table.get("start", "0s"), f"{path}.start"),
        duration=None if duration is None else _seconds(duration, f"{path}.duration"),
        count=None if count is None else _int(count, f"{path}.count"),
        delay=_seconds(table.get("delay", "30s"), f"{path}.delay"),
        retry_after=_seconds(table.get("retry_after", "60s"), f"{path}.retry_after"),
        status=status,
        path=None if table.get("path") is None else str(table["path"]),
    )


def _limits(raw: Any, path: str) -> Limits:
    table = _table(raw, path)
    _reject_unknown(table, path, set(Limits.__dataclass_fields__))
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "binance_ban_seconds":
            values[key] = _seconds(value, f"{path}.{key}")
        else:
            values[key] = _int(value, f"{path}.{key}")
            if values[key] < 0:
                raise InvalidInput(f"{path}.{key}", "must be >= 0")
    return Limits(**values)


def _reject_unknown(table: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise InvalidInput(f"{path}.{key}" if path else str(key), "unknown key")


def _require(table: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in table:
        raise InvalidInput(f"{path}.{key}" if path else key, "missing")
    return table[key]


def _table(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidInput(path, "must be a table/object")
    return raw


def _list(raw: Any, path: str) -> list[Any]:
    if not isinstance(raw, list):
        raise InvalidInput(path, "must be a list/array")
    return raw


def _float(raw: Any, path: str) -> float:
    if isinstance(raw, bool):
        raise InvalidInput(path, "must be a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(path, f"{raw!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInput(path, "must be finite")
    return value


def _positive(raw: Any, path: str) -> float:
    value = _float(raw, path)
    if value <= 0:
        raise InvalidInput(path, "must be > 0")
    return value


def _non_negative(raw: Any, path: str) -> float:
    value = _float(raw, path)
    if value < 0:
        raise InvalidInput(path, "must be >= 0")
    return value


def _int(raw: Any, path: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise InvalidInput(path, "must be an integer")
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(path, f"{raw!r} is not an integer") from None


def _bool(raw: Any, path: str) -> bool:
    if not isinstance(raw, bool):
        raise InvalidInput(path, "must be true or false")
    return raw


def _percent(raw: Any, path: str) -> float:
    if isinstance(raw, bool):
        raise InvalidInput(path, "must be a number or a percentage")
    return parse_percent(raw, path=path)


def _seconds(raw: Any, path: str) -> float:
    if isinstance(raw, bool):
        raise InvalidInput(path, "must be a duration")
    return parse_duration(raw, path=path).total_seconds()


def _margin_mode(raw: Any, path: str) -> MarginMode:
    try:
        return MarginMode(str(raw))
    except ValueError:
        raise InvalidInput(path, "must be cross or isolated") from None
