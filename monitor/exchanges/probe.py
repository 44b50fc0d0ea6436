"""What `check-config --connect` reports per account, and the request budget of the poll intervals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from monitor.domain.model import Venue
from monitor.domain.units import format_percent


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """One account as the venue sees it. `can_trade`/`can_withdraw` are None where the venue does
    not expose key permissions; `warnings` are for the person reading check-config."""

    account: str
    venue: Venue
    reachable: bool
    error: str | None = None
    can_trade: bool | None = None
    can_withdraw: bool | None = None
    permissions: tuple[str, ...] = ()
    position_mode: str | None = None
    # How the venue pools this account's margin (a PoolModel value), as detected.
    account_model: str | None = None
    margin_modes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class VenueLimit:
    """A venue's per-IP request limit: `limit` units per `window`, counted as `unit`."""

    limit: float
    window: timedelta
    unit: str


# Binance counts request weight per IP per minute; Bybit counts requests per IP per 5 s.
VENUE_LIMITS: dict[str, VenueLimit] = {
    "binance-fapi": VenueLimit(2400, timedelta(minutes=1), "weight"),
    "binance-dapi": VenueLimit(2400, timedelta(minutes=1), "weight"),
    "bybit": VenueLimit(600, timedelta(seconds=5), "requests"),
}

# What one poll costs, in the unit of the venue's limit (see the adapters' fetch_account):
# Binance USDⓈ-M v3 account 5 + v3 positionRisk 5; COIN-M account 5 + positionRisk 1;
# Bybit account/info + wallet-balance + one position/list page (a unified cross pool: one per settle
# coin, USDT and USDC). Protective orders add, for one held symbol, Binance openAlgoOrders 1 +
# openOrders 1 (2 more per further symbol) and Bybit one order/realtime page per settle coin.
POLL_COST: dict[Venue, float] = {
    Venue.BINANCE_USDM: 12,
    Venue.BINANCE_COINM: 8,
    Venue.BYBIT_LINEAR: 6,
    Venue.BYBIT_INVERSE: 4,
}


# Binance USDⓈ-M's poll cost depends on the account's margin model (PoolModel values): Multi-Assets
# adds the asset index (all coins, 10) to every poll while a coin that moves is held (hourly
# otherwise); Portfolio Margin reads papi instead of fapi: account 20 + balance 20 +
# um/positionRisk 5, plus the asset index 10 when a coin that moves is held. papi counts against
# its own per-IP limit (6000 per minute), fapi's asset index against fapi's. Hourly reads
# (multiAssetsMargin 30, brackets 1, PM collateral rates 50 on sapi) are left out.
POLL_COST_BY_MODEL: dict[tuple[Venue, str], float] = {
    (Venue.BINANCE_USDM, "single-asset"): 12,
    (Venue.BINANCE_USDM, "multi-assets"): 22,
    (Venue.BINANCE_USDM, "portfolio"): 57,
}


def poll_cost(venue: Venue, model: str | None = None) -> float:
    """One poll's cost for an account of `venue` in margin model `model` (worst case when None
    or when the cost does not depend on the model)."""
    if model is None:
        return POLL_COST[venue]
    return POLL_COST_BY_MODEL.get((venue, model), POLL_COST[venue])


def limit_group(venue: Venue) -> str:
    """Which per-IP limit a venue's requests count against."""
    return {
        Venue.BINANCE_USDM: "binance-fapi",
        Venue.BINANCE_COINM: "binance-dapi",
        Venue.BYBIT_LINEAR: "bybit",
        Venue.BYBIT_INVERSE: "bybit",
    }[venue]


PRODUCTION = "production"


def budget_address(base_url: str | None, testnet: bool) -> str:
    """The address an account's requests go to, as the budget names it: its `base_url`, the
    venue's test hosts, or the venue's production hosts. Accounts sharing one share its limit."""
    return base_url or ("testnet" if testnet else PRODUCTION)


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """How much of a venue's per-IP limit the configured polls of one address use."""

    group: str
    accounts: int
    used: float
    limit: VenueLimit
    address: str = PRODUCTION

    @property
    def share(self) -> float:
        """Fraction of the limit used (1.0 = at the limit)."""
        return self.used / self.limit.limit

    @property
    def where(self) -> str:
        """The venue limit and the address: "binance-fapi" or "bybit at http://127.0.0.1:8900"."""
        return self.group if self.address == PRODUCTION else f"{self.group} at {self.address}"

    def describe(self) -> str:
        """One line for people: "binance-fapi: 2 accounts use 120 weight/1m of 2400 (5.0 %)"."""
        window = f"{self.limit.window.total_seconds():g}s"
        return (
            f"{self.where}: {self.accounts} account(s) use {self.used:.1f} {self.limit.unit} per "
            f"{window} of {self.limit.limit:g} per IP ({format_percent(self.share, against=[0.5, 1.0])})"
        )

    def remedy(self) -> str:
        """What brings an over-limit address back under 100 %: how much longer the poll
        intervals must be, or how many of its accounts one address can carry."""
        factor = self.share
        fit = int(self.accounts / factor) if factor > 0 else self.accounts
        return (
            f"{self.where} is over the venue's per-IP limit "
            f"({format_percent(self.share, against=[1.0])} of it): lengthen "
            f"poll_interval at least {factor:.2f}-fold on its accounts, or put at most {fit} of "
            f"these {self.accounts} accounts on one address (base_url)"
        )


def request_budget(
    polls: Iterable[tuple[Venue, timedelta]],
    models: Iterable[str | None] | None = None,
    addresses: Iterable[str] | None = None,
) -> list[BudgetLine]:
    """The load of polling each (venue, interval) account, summed per venue limit and address;
    `models` (in the same order) prices each poll for the account's detected margin model,
    `addresses` (in the same order, see `budget_address`) says where its requests go."""
    used: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    known = iter(models) if models is not None else None
    where = iter(addresses) if addresses is not None else None
    for venue, interval in polls:
        group = limit_group(venue)
        key = (group, next(where, PRODUCTION) if where is not None else PRODUCTION)
        window = VENUE_LIMITS[group].window
        cost = poll_cost(venue, next(known, None) if known is not None else None)
        used[key] = used.get(key, 0.0) + cost * (window / interval)
        counts[key] = counts.get(key, 0) + 1
    return [
        BudgetLine(group, counts[key], used[key], VENUE_LIMITS[group], address)
        for key in used
        for group, address in [key]
    ]


def permission_warnings(can_trade: bool | None, can_withdraw: bool | None) -> list[str]:
    """What a person should hear about a monitoring key that can do more than read."""
    warnings = []
    if can_withdraw:
        warnings.append("the API key can WITHDRAW funds; a read-only key is all the monitor needs")
    if can_trade:
        warnings.append("the API key can trade; a read-only key is all the monitor needs")
    return warnings
