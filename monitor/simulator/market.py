"""The venue's book of accounts: wallets, positions, marks, and liquidation as the venue would do it.

Margin figures come from the project's own engine (`monitor.domain.margin.assess`) applied to the
simulator's state, so what the simulator reports is exactly what a correct client should compute.
Every settlement asset of an account is its own margin pool (Binance single-asset mode, Bybit
isolated-margin mode and inverse contracts), except the linear contracts of a Bybit Unified Trading
Account in cross margin: they share one pool of every collateral coin in USD (`bybit_pool`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from monitor.domain.margin import assess
from monitor.domain.model import (
    AccountRisk,
    AccountState,
    MarginMode,
    PoolModel,
    Position,
    PositionRisk,
    Side,
    Tier,
    Venue,
)
from monitor.simulator import binance_pool, bybit_pool
from monitor.simulator.clock import SimClock
from monitor.simulator.prices import PricePaths
from monitor.simulator.scenario import (
    BYBIT,
    AccountSpec,
    Instrument,
    Scenario,
    TierSpec,
)

# Long idle periods are not replayed second by second; beyond this many steps the market jumps.
_MAX_STEPS_PER_ADVANCE = 3600
# Replaying time runs the full engine only for pools this close to liquidation (equity below this
# multiple of a generous maintenance-margin estimate, or a mark within this share of an isolated
# position's liquidation price); healthy accounts are screened with plain arithmetic.
_SCREEN_RATIO = 1.5
# The pool key of the positions a venue pools in USD: a Bybit UTA cross account's linear
# contracts, a Binance Multi-Assets or Portfolio Margin account's USDⓈ-M ones.
POOLED = "USD"
_SCREEN_DISTANCE = 0.05


@dataclass(slots=True)
class SimPosition:
    """An open position (one leg in hedge mode)."""

    instrument: Instrument
    side: Side
    quantity: float
    entry_price: float
    leverage: float
    margin_mode: MarginMode
    isolated_margin: float | None
    hedge: bool
    opened_ms: int
    # The isolated liquidation price from the last full evaluation (it does not depend on marks).
    screen_liquidation: float | None = None
    screened: bool = False


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A position the venue closed because its mark crossed the liquidation price."""

    account: str
    symbol: str
    side: Side
    margin_mode: MarginMode
    quantity: float
    mark_price: float
    liquidation_price: float | None
    at: datetime


@dataclass(slots=True)
class SimAccount:
    """One API key's account as the venue holds it."""

    spec: AccountSpec
    wallet: dict[str, float]
    positions: list[SimPosition]
    evaluated: float = 0.0
    liquidations: list[Liquidation] = field(default_factory=list)
    # Bumped whenever the venue changes the account (liquidation), so cached views are dropped.
    version: int = 0
    # The market revision (price overrides) the account was last checked against.
    revision: int = 0

    @property
    def name(self) -> str:
        """The scenario's name for the account."""
        return self.spec.name

    @property
    def exchange(self) -> str:
        """ "binance" or "bybit"."""
        return self.spec.exchange


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position with its mark and the engine's figures for it."""

    position: SimPosition
    mark_price: float
    risk: PositionRisk
    initial_margin: float


@dataclass(frozen=True, slots=True)
class PoolView:
    """One margin pool (venue + settlement asset) at one moment."""

    venue: Venue
    asset: str
    cross_wallet: float
    state: AccountState
    risk: AccountRisk
    positions: tuple[PositionView, ...]

    @property
    def isolated_wallet(self) -> float:
        """Margin locked in isolated positions of this pool."""
        return sum(p.position.isolated_margin or 0.0 for p in self.positions)


class Market:
    """Instruments, price paths and accounts, evaluated on the simulator clock."""

    def __init__(self, scenario: Scenario, clock: SimClock) -> None:
        self.scenario = scenario
        self.clock = clock
        self.started_at = clock.now()
        self.prices = PricePaths(scenario.feeds, scenario.moves, scenario.seed, scenario.tick)
        opened_ms = int(self.started_at.timestamp() * 1000)
        self.accounts: dict[str, SimAccount] = {}
        for spec in scenario.accounts:
            positions = []
            for p in spec.positions:
                instrument = scenario.instrument(spec.exchange, p.symbol)
                assert instrument is not None  # the scenario parser checked it
                positions.append(
                    SimPosition(
                        instrument=instrument,
                        side=p.side,
                        quantity=p.quantity,
                        entry_price=p.entry_price,
                        leverage=p.leverage,
                        margin_mode=p.margin_mode,
                        isolated_margin=p.isolated_margin,
                        hedge=_hedged(spec, instrument),
                        opened_ms=opened_ms,
                    )
                )
            self.accounts[spec.name] = SimAccount(spec, dict(spec.wallet), positions)
        self.by_key = {account.spec.api_key: account for account in self.accounts.values()}
        self._revision = 0
        self._views: dict[str, tuple[float, int, int, list[PoolView]]] = {}
        self._domain_tiers: dict[tuple[str, str], tuple[Tier, ...]] = {}

    def elapsed(self, at: datetime | None = None) -> float:
        """Seconds of scenario time at `at` (default: now)."""
        return ((at or self.clock.now()) - self.started_at).total_seconds()

    def now_ms(self) -> int:
        """The simulator clock in milliseconds since the epoch (timestamps in payloads)."""
        return int(self.clock.now().timestamp() * 1000)

    def mark(self, instrument: Instrument, elapsed: float | None = None) -> float:
        """Mark price of `instrument`, on the tick grid."""
        when = self.elapsed() if elapsed is None else elapsed
        return round_to_tick(self.prices.price(instrument.feed, when), instrument.tick_size)

    def instruments(self, venue: Venue) -> tuple[Instrument, ...]:
        """Instruments listed on `venue`."""
        return tuple(i for i in self.scenario.instruments if i.venue is venue)

    def index_price(self, asset: str, elapsed: float | None = None) -> float | None:
        """USD index of a coin: its feed's price, 1 for a USD stablecoin, None if neither."""
        if asset in self.scenario.feeds:
            return self.prices.price(asset, self.elapsed() if elapsed is None else elapsed)
        return 1.0 if asset in binance_pool.STABLECOINS else None

    def tiers(self, account: SimAccount | None, instrument: Instrument) -> tuple[TierSpec, ...]:
        """The bracket table `account` is subject to on `instrument` (per-user on Binance)."""
        if account is not None and instrument.symbol in account.spec.tier_overrides:
            return account.spec.tier_overrides[instrument.symbol]
        return instrument.tiers

    def set_price(self, feed: str, price: float | None) -> None:
        """Pin `feed` at `price` (None: back to its path)."""
        self.prices.override(feed, price)
        self._revision += 1

    def pools(self, account: SimAccount, elapsed: float | None = None) -> list[PoolView]:
        """The account's margin pools at scenario second `elapsed` (default: now), after the venue
        has liquidated whatever it had to on the way there."""
        when = self.elapsed() if elapsed is None else elapsed
        self.advance(account, when)
        cached = self._views.get(account.name)
        key = (when, account.version, self._revision)
        if cached is not None and cached[:3] == key:
            return cached[3]
        pools = self._pools(account, when)
        self._views[account.name] = (*key, pools)
        return pools

    def advance(self, account: SimAccount, elapsed: float | None = None) -> None:
        """Replay the market from the account's last evaluation to `elapsed` (default: now) in
        scenario ticks, liquidating on the way."""
        now = self.elapsed() if elapsed is None else elapsed
        if now <= account.evaluated:
            # Time stands still, but a pinned price may have moved the market under the account.
            if account.revision != self._revision:
                account.revision = self._revision
                if account.positions and self._may_liquidate(account, account.evaluated):
                    self._liquidate(account, account.evaluated)
            return
        account.revision = self._revision
        step = self.scenario.tick
        steps = math.ceil((now - account.evaluated) / step)
        if steps > _MAX_STEPS_PER_ADVANCE:
            account.evaluated = now - step * _MAX_STEPS_PER_ADVANCE
            steps = _MAX_STEPS_PER_ADVANCE
        for i in range(1, steps + 1):
            when = min(now, account.evaluated + step * i)
            if account.positions and self._may_liquidate(account, when):
                self._liquidate(account, when)
        account.evaluated = now

    def _may_liquidate(self, account: SimAccount, elapsed: float) -> bool:
        """Whether any pool might be at or past liquidation: a cheap, deliberately pessimistic screen."""
        for (_venue, asset), positions in _groups(account).items():
            if asset != POOLED:
                equity = account.wallet.get(asset, 0.0)
            elif account.spec.exchange == BYBIT:
                equity = self._pool_floor(account, elapsed)
            else:
                # Every coin at its index after the venue's haircut (a pessimistic screen).
                equity = sum(
                    amount * (self.index_price(coin, elapsed) or 0.0) * (1 - 2 * _HAIRCUT)
                    for coin, amount in account.wallet.items()
                )
            maintenance = 0.0
            for position in positions:
                mark = self.mark(position.instrument, elapsed)
                if position.margin_mode is MarginMode.ISOLATED:
                    if not position.screened:
                        return True
                    liq = position.screen_liquidation
                    if liq is not None and (
                        abs(mark - liq) <= _SCREEN_DISTANCE * mark
                        or (mark <= liq if position.side is Side.LONG else mark >= liq)
                    ):
                        return True
                    continue
                value = notional(position, mark)
                equity += unrealized_pnl(position, mark)
                tiers = self.tiers(account, position.instrument)
                maintenance += max(value * t.mmr - t.deduction for t in tiers)
                maintenance += 2 * value * position.instrument.taker_fee
            if maintenance > 0 and equity <= _SCREEN_RATIO * maintenance:
                return True
        return False

    def _liquidate(self, account: SimAccount, elapsed: float) -> None:
        for pool in self._pools(account, elapsed):
            doomed: list[PositionView] = []
            for view in pool.positions:
                liq = view.risk.liquidation_price
                if view.position.margin_mode is MarginMode.ISOLATED and liq is not None:
                    crossed = (
                        view.mark_price <= liq
                        if view.position.side is Side.LONG
                        else view.mark_price >= liq
                    )
                    if crossed:
                        doomed.append(view)
            cross = [v for v in pool.positions if v.position.margin_mode is MarginMode.CROSS]
            risk = pool.risk
            limit = pool.state.liquidation_ratio * risk.maintenance_margin
            if cross and risk.maintenance_margin > 0 and risk.equity <= limit:
                doomed.extend(cross)
                if pool.asset == POOLED and account.spec.exchange == BYBIT:
                    # Each position is closed at its mark in its settle coin; its maintenance
                    # margin goes to the insurance fund.
                    for view in cross:
                        settle = view.position.instrument.settle
                        account.wallet[settle] = account.wallet.get(settle, 0.0) + (
                            unrealized_pnl(view.position, view.mark_price)
                            - view.risk.maintenance_margin
                        )
                elif pool.asset == POOLED:
                    _settle_pooled(account, cross, risk.maintenance_margin)
                else:
                    # The cross pool is closed at the marks; what is left above maintenance
                    # margin stays, the maintenance margin itself goes to the insurance fund.
                    account.wallet[pool.asset] = max(0.0, risk.equity - risk.maintenance_margin)
            at = self.started_at + timedelta(seconds=elapsed)
            if doomed:
                account.version += 1
            for view in doomed:
                account.positions.remove(view.position)
                account.liquidations.append(
                    Liquidation(
                        account=account.name,
                        symbol=view.position.instrument.symbol,
                        side=view.position.side,
                        margin_mode=view.position.margin_mode,
                        quantity=view.position.quantity,
                        mark_price=view.mark_price,
                        liquidation_price=view.risk.liquidation_price,
                        at=at,
                    )
                )

    def resize(self, account: SimAccount, symbol: str, quantity: float) -> None:
        """A fill: the account's position in `symbol` now holds `quantity` (0 closes it) at
        the same entry price."""
        self.advance(account)
        position = next((p for p in account.positions if p.instrument.symbol == symbol), None)
        if position is None:
            raise KeyError(symbol)
        if quantity == 0:
            account.positions.remove(position)
        else:
            position.quantity = quantity
            position.screened = False
        account.version += 1

    def transfer(self, account: SimAccount, asset: str, amount: float) -> None:
        """A transfer into (`amount` > 0) or out of the account's wallet."""
        self.advance(account)
        account.wallet[asset] = max(0.0, account.wallet.get(asset, 0.0) + amount)
        account.version += 1

    def usd_price(self, coin: str, elapsed: float | None = None) -> float | None:
        """The USD index price of `coin` (stablecoins at 1; None for a coin without a feed)."""
        if coin in bybit_pool.STABLE:
            return 1.0
        if coin in self.prices.feeds:
            return self.prices.price(coin, self.elapsed() if elapsed is None else elapsed)
        return None

    def unified_wallet(self, account: SimAccount) -> dict[str, float]:
        """The coins of a Bybit account's unified wallet (UTA 1.0 keeps the coins settling its
        inverse contracts in the separate contract wallet)."""
        inverse = {p.instrument.settle for p in account.positions if p.instrument.venue.inverse}
        return {
            coin: amount
            for coin, amount in account.wallet.items()
            if not bybit_pool.contract_wallet(account.spec, inverse, coin)
        }

    def pooled_state(
        self, account: SimAccount, positions: list[SimPosition], elapsed: float
    ) -> AccountState:
        """The Bybit UTA cross pool: every priced coin of the unified wallet and the settle coins
        of `positions`, in USD."""
        wallet = self.unified_wallet(account)
        prices: dict[str, float] = {}
        for coin in set(wallet) | {p.instrument.settle for p in positions}:
            price = self.usd_price(coin, elapsed)
            if price is not None:
                prices[coin] = price
        collateral = bybit_pool.collateral(wallet, prices)
        return AccountState(
            venue=Venue.BYBIT_LINEAR,
            wallet_balance=sum(c.quantity * c.price for c in collateral),
            positions=tuple(
                self._domain_position(account, p, self.mark(p.instrument, elapsed), pooled=True)
                for p in positions
            ),
            asset=POOLED,
            model=PoolModel.UNIFIED,
            collateral=collateral,
        )

    def _pool_floor(self, account: SimAccount, elapsed: float) -> float:
        """A floor under the pooled equity before PnL: positive coins at their lowest ratio."""
        total = 0.0
        for coin, amount in self.unified_wallet(account).items():
            price = self.usd_price(coin, elapsed)
            if price is None:
                continue
            lowest = min(t.ratio for t in bybit_pool.tiers(coin))
            total += amount * price * (lowest if amount > 0 else 1.0)
        return total

    def _pools(self, account: SimAccount, elapsed: float) -> list[PoolView]:
        pools = []
        for (venue, asset), positions in _groups(account).items():
            marks = [self.mark(p.instrument, elapsed) for p in positions]
            if asset == POOLED and account.spec.exchange == BYBIT:
                state = self.pooled_state(account, positions, elapsed)
            elif asset == POOLED:
                domain = tuple(
                    self._domain_position(account, p, mark)
                    for p, mark in zip(positions, marks, strict=True)
                )
                prices = {
                    coin: price
                    for coin in set(account.wallet) | {p.instrument.settle for p in positions}
                    if (price := self.index_price(coin, elapsed)) is not None
                }
                state = binance_pool.pooled_state(
                    account.spec, account.wallet, [p.instrument for p in positions], domain, prices
                )
            else:
                state = AccountState(
                    venue=venue,
                    wallet_balance=account.wallet.get(asset, 0.0),
                    positions=tuple(
                        self._domain_position(account, p, mark)
                        for p, mark in zip(positions, marks, strict=True)
                    ),
                    asset=asset,
                )
            risk = assess(state)
            views = tuple(
                PositionView(p, mark, r, _initial_margin(p, mark))
                for p, mark, r in zip(positions, marks, risk.positions, strict=True)
            )
            for view in views:
                if view.position.margin_mode is MarginMode.ISOLATED:
                    view.position.screen_liquidation = view.risk.liquidation_price
                    view.position.screened = True
            pools.append(PoolView(venue, asset, state.wallet_balance, state, risk, views))
        return pools

    def _domain_position(
        self, account: SimAccount, position: SimPosition, mark: float, *, pooled: bool = False
    ) -> Position:
        instrument = position.instrument
        key = (account.name, instrument.venue.value + ":" + instrument.symbol)
        tiers = self._domain_tiers.get(key)
        if tiers is None:
            tiers = tuple(
                Tier(floor=t.floor, cap=t.cap, mmr=t.mmr, deduction=t.deduction)
                for t in self.tiers(account, instrument)
            )
            self._domain_tiers[key] = tiers
        return Position(
            symbol=instrument.symbol,
            side=position.side,
            margin_mode=position.margin_mode,
            quantity=position.quantity,
            entry_price=position.entry_price,
            mark_price=mark,
            tiers=tiers,
            contract_size=instrument.contract_size,
            leverage=position.leverage,
            isolated_margin=position.isolated_margin,
            taker_fee=instrument.taker_fee if instrument.exchange == BYBIT else 0.0,
            hedge=position.hedge,
            settle_asset=instrument.settle if pooled else None,
            underlying=instrument.base if pooled else None,
        )


# The largest collateral buffer the screen allows for in a Binance Multi-Assets or Portfolio
# Margin account.
_HAIRCUT = binance_pool.COIN_BUFFER


def _groups(account: SimAccount) -> dict[tuple[Venue, str], list[SimPosition]]:
    """The account's positions by margin pool (venue, settlement asset; `POOLED` for the linear
    contracts of a Bybit UTA in cross margin), in scenario order."""
    unified = bybit_pool.pooled(account.spec)
    groups: dict[tuple[Venue, str], list[SimPosition]] = {}
    pooled = binance_pool.pooled(account.spec)
    for position in account.positions:
        venue = position.instrument.venue
        if venue is Venue.BINANCE_USDM:
            asset = POOLED if pooled else position.instrument.settle
        else:
            asset = POOLED if unified and not venue.inverse else position.instrument.settle
        groups.setdefault((venue, asset), []).append(position)
    return groups


def _settle_pooled(account: SimAccount, cross: list[PositionView], maintenance: float) -> None:
    """A liquidated pooled account: each closed position's PnL is paid in its settle coin and the
    maintenance margin (USD) goes to the insurance fund out of the largest stablecoin wallet."""
    for view in cross:
        settle = view.position.instrument.settle
        account.wallet[settle] = account.wallet.get(settle, 0.0) + unrealized_pnl(
            view.position, view.mark_price
        )
    stables = [coin for coin in account.wallet if coin in binance_pool.STABLECOINS]
    if stables:
        largest = max(stables, key=lambda coin: account.wallet[coin])
        account.wallet[largest] -= maintenance


def _hedged(spec: AccountSpec, instrument: Instrument) -> bool:
    if not spec.hedge:
        return False
    # Bybit offers hedge mode only on USDT-settled linear contracts.
    return instrument.exchange != BYBIT or (
        instrument.venue is Venue.BYBIT_LINEAR and instrument.settle == "USDT"
    )


def _initial_margin(position: SimPosition, mark: float) -> float:
    """Initial margin as the venue reports it (Bybit: entry value / leverage + fee to close)."""
    instrument = position.instrument
    if instrument.exchange != BYBIT:
        return notional(position, mark) / position.leverage
    sign = position.side.sign
    if instrument.venue.inverse:
        value = position.quantity * instrument.contract_size / position.entry_price
        fee = value * instrument.taker_fee * (1 + sign / position.leverage)
    else:
        value = position.quantity * position.entry_price
        fee = value * instrument.taker_fee * (1 - sign / position.leverage)
    return value / position.leverage + fee


def notional(position: SimPosition, mark: float) -> float:
    """Position value at `mark` in the settlement asset (coin for inverse contracts)."""
    instrument = position.instrument
    if instrument.venue.inverse:
        return position.quantity * instrument.contract_size / mark
    return position.quantity * mark


def unrealized_pnl(position: SimPosition, mark: float) -> float:
    """Profit or loss at `mark` in the settlement asset."""
    instrument = position.instrument
    sign = position.side.sign
    if instrument.venue.inverse:
        return (
            sign
            * position.quantity
            * instrument.contract_size
            * (1 / position.entry_price - 1 / mark)
        )
    return sign * position.quantity * (mark - position.entry_price)


def round_to_tick(price: float, tick: float) -> float:
    """`price` on the venue's price grid."""
    return round(round(price / tick) * tick, _tick_decimals(tick))


@functools.cache
def _tick_decimals(tick: float) -> int:
    return max(0, -int(Decimal(repr(tick)).normalize().as_tuple().exponent))
