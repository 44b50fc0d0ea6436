"""Value objects for one margin pool of a futures account: what goes into the margin engine and what
comes out of it.

Numbers are binary floats. A double carries ~15-16 significant digits, several orders of magnitude
finer than any exchange's price tick or balance precision, and the engine must recompute thousands
of accounts per second; Decimal would cost an order of magnitude in speed for no visible gain.
"""

from __future__ import annotations

from dataclasses import field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from monitor.domain.immutable import immutable

if TYPE_CHECKING:
    from monitor.domain.stops import PositionStop, ProtectiveOrder
    from monitor.domain.volatility import SymbolVolatility, VolatilityRisk


class Venue(StrEnum):
    """A futures product family; each has its own margin arithmetic."""

    BINANCE_USDM = "binance-usdm"
    BINANCE_COINM = "binance-coinm"
    BYBIT_LINEAR = "bybit-linear"
    BYBIT_INVERSE = "bybit-inverse"

    @property
    def inverse(self) -> bool:
        """Inverse (coin-margined) contracts: PnL and margin are in the base coin."""
        return self in (Venue.BINANCE_COINM, Venue.BYBIT_INVERSE)

    @property
    def exchange(self) -> str:
        """The exchange operating this product ("binance" or "bybit")."""
        return self.value.split("-", 1)[0]


class Side(StrEnum):
    """Direction of a position."""

    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        """+1 for a long (gains when price rises), -1 for a short."""
        return 1 if self is Side.LONG else -1


class PoolModel(StrEnum):
    """How the venue pools margin for this account (detected from the venue, never assumed).

    - single-asset: one settlement coin's wallet backs the positions settled in it.
    - multi-assets: Binance USDⓈ-M Multi-Assets mode, every margin asset pooled in USD.
    - unified: Bybit Unified Trading Account in cross mode, every collateral coin pooled in USD.
    - isolated: Bybit UTA in isolated-margin mode; every position has its own margin.
    - portfolio: Binance Portfolio Margin / Bybit portfolio margin; liquidation at the venue's
      account ratio, parts of the maintenance margin are the venue's figures.
    """

    SINGLE_ASSET = "single-asset"
    MULTI_ASSETS = "multi-assets"
    UNIFIED = "unified"
    ISOLATED = "isolated"
    PORTFOLIO = "portfolio"


class MarginMode(StrEnum):
    """Cross positions share the pool's wallet; isolated ones risk only their own margin."""

    CROSS = "cross"
    ISOLATED = "isolated"


@immutable
class Tier:
    """One row of a leverage bracket / risk-limit table.

    `floor`/`cap` bound the position notional in the settlement asset (`cap` None = no cap);
    `mmr` is the maintenance-margin rate; `deduction` is Binance `cum` / Bybit `mmDeduction`,
    which keeps maintenance margin continuous across tier boundaries.
    """

    floor: float
    cap: float | None
    mmr: float
    deduction: float = 0.0


@immutable
class Position:
    """One open position (one leg in hedge mode) as the exchange holds it.

    `quantity` is in base units for linear contracts and in contracts for inverse ones, where
    `contract_size` is the quote value of one contract (100 USD for BTCUSD). `isolated_margin` is
    the margin locked in an isolated position. The `exchange_*` fields are the venue's own figures,
    kept to show side by side with ours; the engine never uses them.
    """

    symbol: str
    side: Side
    margin_mode: MarginMode
    quantity: float
    entry_price: float
    mark_price: float
    tiers: tuple[Tier, ...]
    contract_size: float = 1.0
    leverage: float | None = None
    isolated_margin: float | None = None
    taker_fee: float = 0.0
    hedge: bool = False
    exchange_liquidation_price: float | None = None
    exchange_maintenance_margin: float | None = None
    # Pooled accounts only: the coin PnL and margin are paid in (USDT for BTCUSDT, USDC for
    # BTCUSDC; None = the state's `asset`) and the coin whose price the mark is (BTC), so that
    # collateral in that coin moves with the mark.
    settle_asset: str | None = None
    underlying: str | None = None

    def at_mark(self, mark_price: float) -> Position:
        """The same position at another mark price (a live one), everything else as fetched."""
        # Every field in order, not dataclasses.replace (twice the cost): live marks re-mark
        # every position of every account once a second.
        return Position(
            self.symbol,
            self.side,
            self.margin_mode,
            self.quantity,
            self.entry_price,
            mark_price,
            self.tiers,
            self.contract_size,
            self.leverage,
            self.isolated_margin,
            self.taker_fee,
            self.hedge,
            self.exchange_liquidation_price,
            self.exchange_maintenance_margin,
            self.settle_asset,
            self.underlying,
        )


@immutable
class CollateralTier:
    """Collateral value ratio for the part of a coin balance above `floor` (in coin units).

    Bybit tiers collateral by quantity and values each tranche at its own ratio (BTC 0-10 at
    0.98, 10-20 at 0.95, ...), so the value of a fixed quantity stays linear in its price.
    """

    floor: float
    ratio: float


@immutable
class Collateral:
    """One coin of a pooled margin account, valued in the pool's currency (USD).

    `quantity` is the wallet balance (negative = borrowed). The coin's equity (quantity plus the
    PnL of the cross positions settled in it) counts at `price` x the tiered value ratio while
    positive, and at `price` x `liability_rate` while negative; the maintenance margin of the
    positions settled in it converts at `price` x `liability_rate` too. Binance Multi-Assets:
    ratio = bidRate / index, liability_rate = askRate / index. Bybit: the collateral value ratio,
    liability_rate 1. `stable` coins keep their price when marks move (USDT, USDC); the others
    move with the marks of positions on them and in the account-wide move.
    """

    asset: str
    quantity: float
    price: float
    ratios: tuple[CollateralTier, ...] = (CollateralTier(0.0, 1.0),)
    liability_rate: float = 1.0
    stable: bool = False


@immutable
class VenueTerm:
    """A part of the pool the engine cannot model (margin loans, spot-order haircut loss,
    options), taken as the venue reports it, in the pool's currency, and labelled as such."""

    name: str
    equity: float = 0.0
    maintenance_margin: float = 0.0


@immutable
class ExchangeAccountFigures:
    """The venue's own account-level figures for the pool (None where the venue does not say)."""

    equity: float | None = None
    maintenance_margin: float | None = None
    initial_margin: float | None = None
    # Maintenance margin / equity, as Binance and Bybit display it (1.0 = liquidation).
    margin_ratio: float | None = None


@immutable
class AccountState:
    """One margin pool: a wallet balance in one settlement asset and the positions drawing on it.

    A pooled account (Binance Multi-Assets or Portfolio Margin, Bybit UTA cross) lists its coins
    in `collateral` instead: equity and maintenance margin are then in USD (`asset` "USD"), and
    `wallet_balance` is the venue's USD wallet total, shown but not used by the engine.
    `liquidation_ratio` is the equity / maintenance margin at which the venue liquidates (1.0;
    Binance Portfolio Margin 1.05). `venue_terms` are parts taken from the venue's figures.
    `assumptions` name the optional data the venue did not serve this time and the conservative
    value used instead (e.g. Bybit's default taker fee), one sentence each: shown with the figures.
    `volatility` holds the realised volatility of the positions' symbols (empty = not read).
    """

    venue: Venue
    wallet_balance: float
    positions: tuple[Position, ...]
    asset: str = "USDT"
    reported: ExchangeAccountFigures = field(default_factory=ExchangeAccountFigures)
    model: PoolModel = PoolModel.SINGLE_ASSET
    collateral: tuple[Collateral, ...] = ()
    liquidation_ratio: float = 1.0
    venue_terms: tuple[VenueTerm, ...] = ()
    assumptions: tuple[str, ...] = ()
    volatility: tuple[SymbolVolatility, ...] = ()
    # Open stop and take-profit orders of the account (monitor.domain.stops); None = not read,
    # so every position's stop status is "unknown".
    protective_orders: tuple[ProtectiveOrder, ...] | None = None

    @property
    def pooled(self) -> bool:
        """True when several coins back the cross positions (values in USD)."""
        return bool(self.collateral)

    def at_marks(
        self,
        positions: tuple[Position, ...],
        collateral: tuple[Collateral, ...],
        assumptions: tuple[str, ...],
    ) -> AccountState:
        """The same account with its positions and collateral re-priced at live marks, and the
        assumptions that go with them; everything else as fetched."""
        # Every field in order, not dataclasses.replace (three times the cost): live marks
        # re-price every account once a second.
        return AccountState(
            self.venue,
            self.wallet_balance,
            positions,
            self.asset,
            self.reported,
            self.model,
            collateral,
            self.liquidation_ratio,
            self.venue_terms,
            assumptions,
            self.volatility,
            self.protective_orders,
        )


@immutable
class PositionRisk:
    """What the margin engine says about one position.

    `liquidation_price` is None when no price can liquidate it (e.g. a fully collateralised long).
    For cross positions it assumes every other mark stays where it is. `distance_to_liquidation`
    is |mark - liquidation| / mark, and 0.0 when the position's pool is already at or below its
    maintenance margin (the price is then where it would be healthy again). For isolated positions
    `equity`, `margin_ratio` and `exchange_margin_ratio` describe the position's own pool; for
    cross ones they are None. New fields go at the end: the engine builds this positionally.
    """

    symbol: str
    side: Side
    margin_mode: MarginMode
    notional: float
    unrealized_pnl: float
    maintenance_margin: float
    liquidation_price: float | None
    distance_to_liquidation: float | None
    equity: float | None = None
    margin_ratio: float | None = None
    exchange_margin_ratio: float | None = None


@immutable
class AccountRisk:
    """What the margin engine says about the cross pool and every position in it.

    `margin_ratio` is equity / maintenance margin (liquidation at 1.0, "keep it above 2.0");
    `exchange_margin_ratio` is its inverse as the exchanges display it. Both are None when the
    pool has no maintenance margin; `exchange_margin_ratio` also when equity <= 0.
    `account_liquidation_move` is the uniform relative move of all marks (e.g. -0.077 = everything
    falls 7.7 %) that brings cross equity down to maintenance margin, nearest to zero in either
    direction; None if no such move exists or there is no cross position, 0.0 if the pool is
    already at or below maintenance margin.
    """

    equity: float
    maintenance_margin: float
    margin_ratio: float | None
    exchange_margin_ratio: float | None
    account_liquidation_move: float | None
    positions: tuple[PositionRisk, ...]
    # Pooled accounts: the USD value each coin contributes to equity (after value ratios, PnL
    # included), in the order of `AccountState.collateral`; empty for single-asset pools.
    collateral_values: tuple[float, ...] = ()
    # Distances and the account move in sigmas of recent moves; None when no volatility was read.
    volatility: VolatilityRisk | None = None
    # Per position (in order): its protective stop judged against its liquidation price.
    stops: tuple[PositionStop, ...] = ()


@immutable
class Snapshot:
    """One poll of one configured account: the state as fetched and what we computed from it."""

    account: str
    taken_at: datetime
    state: AccountState
    risk: AccountRisk
