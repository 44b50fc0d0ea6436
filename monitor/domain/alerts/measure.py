"""What each rule measures in one observation, in numbers (`facts`) and in plain words."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import field
from datetime import datetime, timedelta
from typing import Any

from monitor.domain.alerts.observation import Observation
from monitor.domain.alerts.rules import Rule, RuleKey
from monitor.domain.alerts.sigma import nearest_in_sigmas, sigma_clause, sigma_facts
from monitor.domain.errors import ExchangeAuthError, VenuePaused
from monitor.domain.immutable import immutable
from monitor.domain.model import MarginMode, PositionRisk, Snapshot
from monitor.domain.notification import Severity
from monitor.domain.stops import StopStatus, position_stops
from monitor.domain.units import (
    format_amount,
    format_duration,
    format_figure,
    format_percent,
    format_price,
)

Facts = dict[str, str | float | None]


@immutable
class Reading:
    """A rule's measure in one cycle: `value` is compared with the rule's levels (inf = no danger
    at all, e.g. no position has a liquidation price); `words` says it in plain words, or is a
    function that does (`summary`). `cause_at` is when the observation behind the value was made,
    when that is not this cycle (stale data: the time of the last fresh data); it anchors the
    notification ids of an episode it starts."""

    value: float
    words: str | Callable[[], str]
    facts: Facts = field(default_factory=dict)
    cause_at: datetime | None = None

    @property
    def summary(self) -> str:
        """The measure in plain words. Written when a message or a history entry needs them,
        not before: live marks measure every rule of every account every second, and nearly
        every such reading is compared with the levels and says nothing."""
        words = self.words
        return words if isinstance(words, str) else words()


def level_text(rule: Rule, severity: Severity) -> str:
    """The level of `severity` in words, e.g. "critical 150 % (exchange: 66.7 %)"."""
    return f"{severity.value} {_format_level(rule, rule.level(severity))}".strip()


def clear_text(rule: Rule, severity: Severity) -> str:
    """The clear level of `severity` in words, e.g. "180 % (exchange: 55.6 %)"."""
    return _format_level(rule, rule.clear_level(severity))


def shown_levels(rule: Rule) -> list[float]:
    """Every level a reading of `rule` is compared with in words (where each severity starts and
    clears): the figures beside them get the decimals it takes not to round onto or across one."""
    return [rule.level(s) for s in rule.severities] + [rule.clear_level(s) for s in rule.severities]


def _format_level(rule: Rule, level: float) -> str:
    if rule.key is RuleKey.MARGIN_RATIO:
        exchange = f" (exchange: {format_percent(1 / level)})" if level > 0 else ""
        return f"{format_percent(level)}{exchange}"
    if rule.key is RuleKey.STALE:
        return f"{level:g} poll intervals"
    if rule.key is RuleKey.MARGIN_CHASING:
        return f"{level:g} top-ups"
    if rule.key is RuleKey.MOVE_IN_SIGMA:
        return f"{level:g} {rule.horizon.symbol}"
    if rule.key in (RuleKey.AUTH, RuleKey.TIER_CHANGE, RuleKey.VENUE_PAUSED, RuleKey.STOP_LOSS):
        return ""
    return format_percent(level)


def nearest_liquidation(snapshot: Snapshot) -> PositionRisk | None:
    """The position whose liquidation price is closest to its mark, if any has one."""
    candidates = [p for p in snapshot.risk.positions if p.distance_to_liquidation is not None]
    return min(candidates, key=lambda p: p.distance_to_liquidation or 0.0, default=None)


def snapshot_facts(snapshot: Snapshot) -> Facts:
    """The account figures every alert about this account carries for machine-readable sinks."""
    risk = snapshot.risk
    nearest = nearest_liquidation(snapshot)
    return {
        "taken_at": snapshot.taken_at.isoformat(),
        "equity": risk.equity,
        "asset": snapshot.state.asset,
        "maintenance_margin": risk.maintenance_margin,
        "margin_ratio": risk.margin_ratio,
        "exchange_margin_ratio": risk.exchange_margin_ratio,
        "account_liquidation_move": risk.account_liquidation_move,
        "nearest_liquidation_symbol": nearest.symbol if nearest else None,
        "nearest_liquidation_side": nearest.side.value if nearest else None,
        "nearest_liquidation_price": nearest.liquidation_price if nearest else None,
        "distance_to_liquidation": nearest.distance_to_liquidation if nearest else None,
        "assumptions": "; ".join(snapshot.state.assumptions) or None,
        **sigma_facts(snapshot),
        "stops": stops_sentence(snapshot) or None,
    }


def stops_sentence(snapshot: Snapshot) -> str:
    """The positions without an effective stop-loss, in one sentence ("" when every position
    has one, or the open orders were not read)."""
    missing: list[str] = []
    beyond: list[str] = []
    for held, computed, stop in zip(
        snapshot.state.positions,
        snapshot.risk.positions,
        position_stops(snapshot.risk),
        strict=True,
    ):
        name = f"{held.symbol} {held.side.value}"
        if stop.status is StopStatus.NONE:
            missing.append(name)
        elif stop.status is StopStatus.BEYOND_LIQUIDATION:
            beyond.append(
                f"{name}'s stop {format_price(stop.stop_price or 0.0)} lies beyond its "
                f"liquidation price {format_price(computed.liquidation_price or 0.0)}"
            )
    parts = ([f"no stop-loss on {', '.join(missing)}"] if missing else []) + beyond
    return f"Stops: {'; '.join(parts)}." if parts else ""


def snapshot_context(snapshot: Snapshot, *, with_ratio: bool = True) -> str:
    """Both ratios, the nearest liquidation and the account-wide move, in one or two sentences."""
    risk = snapshot.risk
    parts = []
    state = snapshot.state
    if with_ratio and risk.margin_ratio is not None and risk.exchange_margin_ratio is not None:
        # Read beside the venue's liquidation ratio: 100.04 % must not print as "100.0 %".
        trigger = state.liquidation_ratio
        ratio = format_percent(risk.margin_ratio, against=[trigger])
        exchange = format_percent(risk.exchange_margin_ratio, against=[1 / trigger])
        parts.append(f"Margin ratio {ratio} (exchange: {exchange}).")
    if state.liquidation_ratio != 1.0:
        parts.append(
            f"The venue liquidates at a margin ratio of {format_percent(state.liquidation_ratio)}."
        )
    if state.venue_terms:
        taken = ", ".join(
            f"{term.name} {format_amount(term.maintenance_margin or term.equity)} {state.asset}"
            for term in state.venue_terms
        )
        parts.append(f"Includes venue figures we cannot model: {taken}.")
    if state.assumptions:
        parts.append(f"Assumed for want of the venue's data: {'; '.join(state.assumptions)}.")
    nearest = nearest_liquidation(snapshot)
    if nearest is not None and nearest.liquidation_price is not None:
        parts.append(
            f"Nearest liquidation: {nearest.symbol} {nearest.side.value} at "
            f"{format_price(nearest.liquidation_price)} ({format_percent(nearest.distance_to_liquidation or 0.0)} away)."
        )
    move = risk.account_liquidation_move
    if move is not None:
        direction = "fall" if move < 0 else "rise"
        parts.append(
            f"All prices moving together: the account is liquidated if they {direction} {format_percent(abs(move))}"
            f"{sigma_clause(snapshot)}."
        )
    stops = stops_sentence(snapshot)
    if stops:
        parts.append(stops)
    return " ".join(parts)


Measure = Callable[
    [Rule, Observation, datetime, dict[str, Any]], "tuple[Reading | None, dict[str, Any]]"
]


def measure(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    """The rule's reading this cycle (None: nothing known, keep the alert as it is) and the rule's
    updated private memory (`extra`, e.g. the top-up history of margin chasing)."""
    return _MEASURES[rule.key](rule, observation, now, extra)


def _margin_ratio(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    snapshot = observation.snapshot
    if snapshot is None:
        return None, extra
    ratio, exchange = snapshot.risk.margin_ratio, snapshot.risk.exchange_margin_ratio
    if ratio is None:
        return Reading(math.inf, "no maintenance margin in the cross pool"), extra
    factor = snapshot.state.liquidation_ratio
    # Levels are written for liquidation at 100 %; a venue that liquidates at 105 % (Binance
    # Portfolio Margin's uniMMR) is judged by the ratio's headroom over its own trigger.
    headroom = ratio / factor

    def words() -> str:
        levels = shown_levels(rule)
        exchange_levels = [1 / level for level in levels if level > 0]
        shown = (
            f" (exchange: {format_percent(exchange, against=exchange_levels)})"
            if exchange is not None
            else ""
        )
        if factor == 1.0:
            return f"margin ratio {format_percent(ratio, against=levels)}{shown}"
        return (
            f"margin ratio {format_percent(ratio)}{shown}, liquidation at {format_percent(factor)}: "
            f"{format_percent(headroom, against=levels)} of what liquidation needs"
        )

    if factor != 1.0:
        return Reading(headroom, words, {"value": headroom, "margin_ratio": ratio}), extra
    return Reading(ratio, words, {"value": ratio}), extra


def _liquidation_distance(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    snapshot = observation.snapshot
    if snapshot is None:
        return None, extra
    nearest = nearest_liquidation(snapshot)
    if nearest is None or nearest.distance_to_liquidation is None:
        return Reading(math.inf, "no position has a liquidation price"), extra
    found = nearest

    def words() -> str:
        mark = next(
            (
                p.mark_price
                for p in snapshot.state.positions
                if (p.symbol, p.side) == (found.symbol, found.side)
            ),
            None,
        )
        at_mark = f" (mark {format_price(mark)})" if mark is not None else ""
        distance = format_percent(found.distance_to_liquidation or 0.0, against=shown_levels(rule))
        return (
            f"{found.symbol} {found.side.value} is {distance} from its "
            f"liquidation price {format_price(found.liquidation_price or 0.0)}{at_mark}"
        )

    facts: Facts = {"value": nearest.distance_to_liquidation, "symbol": nearest.symbol}
    return Reading(nearest.distance_to_liquidation, words, facts), extra


def _account_move(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    snapshot = observation.snapshot
    if snapshot is None:
        return None, extra
    move = snapshot.risk.account_liquidation_move
    if move is None:
        return Reading(math.inf, "no uniform price move liquidates the account"), extra
    found = move

    def words() -> str:
        levels = [level if found >= 0 else -level for level in shown_levels(rule)]
        shown = format_percent(found, against=levels)
        return f"a move of all prices by {shown} together would liquidate the account"

    return Reading(abs(move), words, {"value": abs(move)}), extra


def _stale(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    # Before the first successful poll, the data has been missing since we first looked.
    first_seen = extra.get("first_seen") or (observation.watching_since or now).isoformat()
    last = observation.last_data_at() or datetime.fromisoformat(first_seen)
    memory: dict[str, Any] = {**extra, "first_seen": first_seen}
    paused = timedelta(0)
    if rule.excuse_pauses:
        window = _pause_window(observation, now, extra.get("pause"), last)
        memory.pop("pause", None)
        if window is not None:
            memory["pause"] = [window[0].isoformat(), window[1].isoformat()]
            # Only the part of the silence the pause explains, up to now.
            paused = max(min(window[1], now) - max(window[0], last), timedelta(0))
    silent = max(now - last, timedelta(0))
    age = max(silent - paused, timedelta(0))
    intervals = age / observation.poll_interval

    def words() -> str:
        summary = (
            f"no fresh data for {format_duration(silent)} ({format_figure(intervals, against=shown_levels(rule))} poll intervals of "
            f"{format_duration(observation.poll_interval)}"
        )
        summary += (
            f" not explained by the venue's pause of {format_duration(paused)})" if paused else ")"
        )
        if observation.fetch_error is not None:
            summary += f"; last error: {observation.fetch_error}"
        return summary

    facts: Facts = {
        "value": intervals,
        "last_data_at": last.isoformat(),
        "paused_seconds": paused.total_seconds(),
    }
    return Reading(intervals, words, facts, cause_at=last), memory


def _pause_window(
    observation: Observation, now: datetime, stored: Any, last: datetime
) -> tuple[datetime, datetime] | None:
    """The venue-wide pause that covers this account's silence: the one this cycle's fetch met
    (joined to the stored one when they touch), else the stored one while it still matters."""
    window: tuple[datetime, datetime] | None = None
    if isinstance(stored, list) and len(stored) == 2:
        window = (datetime.fromisoformat(stored[0]), datetime.fromisoformat(stored[1]))
    error = observation.fetch_error
    if isinstance(error, VenuePaused) and observation.venue in (None, error.venue):
        since = now - timedelta(seconds=error.elapsed)
        until = now + timedelta(seconds=error.retry_after or 0.0)
        if window is not None and since <= window[1]:
            since = min(since, window[0])
        window = (since, until)
    if window is None or window[1] <= last:
        return None  # fresh data came after it: that pause explains nothing any more
    return window


def _venue_paused(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    peers = observation.venue_accounts
    if peers and peers[0] != observation.account:
        # Another account on this venue and address carries the one alert for all of them.
        return None, extra
    venue = observation.venue
    error = observation.fetch_error
    if isinstance(error, VenuePaused) and venue in (None, error.venue):
        wait = timedelta(seconds=error.retry_after or 0.0)
        since = now - timedelta(seconds=error.elapsed)
        until = now + wait
        waiting = ", ".join(peers or (observation.account,))
        summary = (
            f"the exchange refuses requests from this address to {error.venue} "
            f"(HTTP 418/429 ban); retry after {format_duration(wait)}, at "
            f"{until:%H:%M:%S} UTC, paused for {format_duration(now - since)} so far. "
            f"Every account there waits: {waiting}; their stale-data alerts are held back for "
            "the pause"
        )
        facts: Facts = {
            "value": 1.0,
            "venue": error.venue,
            "retry_after": wait.total_seconds(),
            "paused_since": since.isoformat(),
            "paused_until": until.isoformat(),
            "accounts": waiting,
        }
        return Reading(1.0, summary, facts, cause_at=since), extra
    if observation.snapshot is None and error is None:
        return None, extra
    where = f" to {venue}" if venue else ""
    return Reading(0.0, f"requests{where} are allowed again", {"value": 0.0}), extra


def _auth(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    if isinstance(observation.fetch_error, ExchangeAuthError):
        summary = f"the exchange rejected the API key: {observation.fetch_error}"
        return Reading(1.0, summary, {"error": str(observation.fetch_error)}), extra
    if observation.snapshot is not None:
        return Reading(0.0, "the API key works"), extra
    return None, extra


def _liquidation_mismatch(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    snapshot = observation.snapshot
    if snapshot is None or observation.live_marks:
        # At live marks our price has moved on and the venue's is as of the last fetch: not
        # like with like, so the rule waits for the next fetch (state unchanged).
        return None, extra
    worst: tuple[float, str] | None = None
    # Our price moves collateral of the same underlying with the mark; the venues do not say
    # whether theirs does, so such a pair is not like with like and is not compared.
    moving = {c.asset for c in snapshot.state.collateral if not c.stable}
    # The engine returns positions in input order, so the pairs line up.
    for held, computed in zip(snapshot.state.positions, snapshot.risk.positions, strict=False):
        ours, theirs = computed.liquidation_price, held.exchange_liquidation_price
        if (
            ours is None
            or not theirs
            or (held.symbol, held.side) != (computed.symbol, computed.side)
            or (held.underlying in moving and held.margin_mode is MarginMode.CROSS)
        ):
            continue
        gap = abs(ours - theirs) / theirs
        if worst is None or gap > worst[0]:
            worst = (
                gap,
                f"our liquidation price for {held.symbol} {held.side.value} is {format_price(ours)}, the "
                f"exchange's {format_price(theirs)} ({format_percent(gap)} apart)",
            )
    if worst is None:
        return Reading(0.0, "no liquidation price to compare with the exchange's"), extra
    return Reading(worst[0], worst[1], {"value": worst[0]}), extra


def _tier_change(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    symbols = observation.changed_tier_symbols
    if not symbols:
        return Reading(0.0, "no change in the exchange's margin tiers"), extra
    summary = (
        f"the exchange changed its margin tiers (leverage brackets / risk limits) for "
        f"{', '.join(symbols)}; maintenance margin and liquidation prices now follow the new tables"
    )
    return Reading(float(len(symbols)), summary, {"symbols": ",".join(symbols)}), extra


def _margin_chasing(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    snapshot = observation.snapshot
    if snapshot is None:
        return None, extra
    before: dict[str, Any] = extra.get("positions", {})
    after: dict[str, dict[str, Any]] = {}
    for position in snapshot.state.positions:
        if position.margin_mode is not MarginMode.ISOLATED or position.isolated_margin is None:
            continue
        key = f"{position.symbol} {position.side.value}"
        seen = before.get(key, {})
        # now - window would overflow for a window of thousands of years; a difference cannot.
        top_ups = [
            t for t in seen.get("top_ups", []) if now - datetime.fromisoformat(t) < rule.window
        ]
        margin, quantity = position.isolated_margin, position.quantity
        # More margin on an unchanged (or smaller) position is a top-up; a bigger position
        # brings its own margin and is not chasing.
        if (
            seen
            and margin > seen["margin"] * (1 + rule.min_increase)
            and quantity <= seen["quantity"] * (1 + 1e-9)
        ):
            top_ups.append(now.isoformat())
        after[key] = {"margin": margin, "quantity": quantity, "top_ups": top_ups}
    memory = {**extra, "positions": after}
    if not after:
        return Reading(0.0, "no isolated position"), memory
    key, worst = max(after.items(), key=lambda item: len(item[1]["top_ups"]))
    count = len(worst["top_ups"])
    summary = (
        f"margin was added {count} times within {format_duration(rule.window)} to isolated {key} "
        f"(isolated margin now {format_amount(worst['margin'])}); adding margin to a losing position only "
        f"moves its liquidation, consider reducing it"
    )
    return Reading(float(count), summary, {"value": float(count), "position": key}), memory


def _move_in_sigma(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    snapshot = observation.snapshot
    found = (
        None
        if snapshot is None
        else nearest_in_sigmas(snapshot, rule.horizon, against=shown_levels(rule))
    )
    if found is None:
        return None, extra
    value, words, facts = found
    return Reading(value, words, facts), extra


# The stop-loss rule's measure: how bad the worst position's protection is.
STOP_UNPROTECTED = 1.0  # no effective stop beyond the grace period, or too large a loss at it
STOP_BEYOND_LIQUIDATION = 2.0  # the stop can never fire: liquidation comes first


def _stop_loss(
    rule: Rule, observation: Observation, now: datetime, extra: dict[str, Any]
) -> tuple[Reading | None, dict[str, Any]]:
    snapshot = observation.snapshot
    if snapshot is None:
        return None, extra
    since: dict[str, str] = extra.get("unprotected", {})
    still: dict[str, str] = {}
    # What is wrong with which position, put in words only if a message needs them.
    beyond: list[tuple[str, float, float]] = []  # name, stop price, liquidation price
    bare: list[tuple[str, timedelta]] = []  # name, how long without a stop
    costly: list[tuple[str, float, float, float]] = []  # name, stop price, loss, share of equity
    known = False
    stops = position_stops(snapshot.risk)
    for held, computed, stop in zip(
        snapshot.state.positions, snapshot.risk.positions, stops, strict=True
    ):
        if stop.status is StopStatus.UNKNOWN:
            continue
        known = True
        name = f"{held.symbol} {held.side.value}"
        if stop.status is StopStatus.BEYOND_LIQUIDATION:
            beyond.append((name, stop.stop_price or 0.0, computed.liquidation_price or 0.0))
        elif not stop.status.effective:
            first = since.get(name) or now.isoformat()
            still[name] = first
            unprotected = now - datetime.fromisoformat(first)
            if unprotected >= rule.grace:
                bare.append((name, unprotected))
        loss = stop.loss_at_stop_of_equity
        if rule.max_loss is not None and loss is not None and -loss > rule.max_loss:
            costly.append((name, stop.stop_price or 0.0, -(stop.loss_at_stop or 0.0), -loss))
    memory = {**extra, "unprotected": still}
    if not known:
        return None, memory  # the open orders were not read: nothing to judge
    if not (beyond or bare or costly):
        return Reading(
            0.0, "every position has a stop-loss that fires before liquidation", {"value": 0.0}
        ), memory
    value = STOP_BEYOND_LIQUIDATION if beyond else STOP_UNPROTECTED
    asset, max_loss = snapshot.state.asset, rule.max_loss or 0.0

    def words() -> str:
        problems = [
            f"{name}: stop {format_price(stop_price)} lies beyond its liquidation price "
            f"{format_price(liquidation)} (the venue liquidates first: the stop can never fire)"
            for name, stop_price, liquidation in beyond
        ]
        problems += [f"{name}: no stop-loss for {format_duration(age)}" for name, age in bare]
        problems += [
            f"{name}: the stop at {format_price(stop_price)} loses {format_amount(loss)} "
            f"{asset} = {format_percent(share, against=[max_loss])} of equity "
            f"(at most {format_percent(max_loss)})"
            for name, stop_price, loss, share in costly
        ]
        return "; ".join(problems)

    facts: Facts = {
        "value": value,
        "beyond_liquidation": len(beyond),
        "without_stop": len(bare),
        "over_max_loss": len(costly),
    }
    return Reading(value, words, facts), memory


_MEASURES: dict[RuleKey, Measure] = {
    RuleKey.MARGIN_RATIO: _margin_ratio,
    RuleKey.LIQUIDATION_DISTANCE: _liquidation_distance,
    RuleKey.ACCOUNT_MOVE: _account_move,
    RuleKey.STALE: _stale,
    RuleKey.AUTH: _auth,
    RuleKey.LIQUIDATION_MISMATCH: _liquidation_mismatch,
    RuleKey.TIER_CHANGE: _tier_change,
    RuleKey.MARGIN_CHASING: _margin_chasing,
    RuleKey.VENUE_PAUSED: _venue_paused,
    RuleKey.MOVE_IN_SIGMA: _move_in_sigma,
    RuleKey.STOP_LOSS: _stop_loss,
}
