"""Small builders of snapshots and observations for the alert tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from monitor.domain.alerts import AlertRules, Evaluation, Observation, Rule, RuleKey, evaluate
from monitor.domain.model import (
    AccountRisk,
    AccountState,
    MarginMode,
    Position,
    PositionRisk,
    Side,
    Snapshot,
    Tier,
    Venue,
)
from monitor.domain.notification import Severity

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
POLL = timedelta(seconds=10)
TIERS = (Tier(0.0, None, 0.004, 0.0),)


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def position(
    symbol: str = "BTCUSDT",
    *,
    mark: float = 58000.0,
    exchange_liq: float | None = None,
    isolated_margin: float | None = None,
    quantity: float = 0.5,
) -> Position:
    return Position(
        symbol=symbol,
        side=Side.LONG,
        margin_mode=MarginMode.ISOLATED if isolated_margin is not None else MarginMode.CROSS,
        quantity=quantity,
        entry_price=60000.0,
        mark_price=mark,
        tiers=TIERS,
        isolated_margin=isolated_margin,
        exchange_liquidation_price=exchange_liq,
    )


def snapshot(
    ratio: float | None = 4.0,
    *,
    taken_at: datetime = T0,
    move: float | None = -0.3,
    liq: float | None = None,
    positions: tuple[Position, ...] | None = None,
) -> Snapshot:
    """A snapshot whose cross pool has margin ratio `ratio` (equity / maintenance margin)."""
    held = positions if positions is not None else (position(),)
    risks = []
    for p in held:
        distance = abs(p.mark_price - liq) / p.mark_price if liq is not None else None
        risks.append(
            PositionRisk(
                symbol=p.symbol,
                side=p.side,
                margin_mode=p.margin_mode,
                notional=p.quantity * p.mark_price,
                unrealized_pnl=0.0,
                maintenance_margin=100.0,
                liquidation_price=liq,
                distance_to_liquidation=distance,
            )
        )
    maintenance = 100.0
    risk = AccountRisk(
        equity=(ratio or 0.0) * maintenance,
        maintenance_margin=maintenance if ratio is not None else 0.0,
        margin_ratio=ratio,
        exchange_margin_ratio=1 / ratio if ratio else None,
        account_liquidation_move=move,
        positions=tuple(risks),
    )
    state = AccountState(venue=Venue.BINANCE_USDM, wallet_balance=1000.0, positions=held)
    return Snapshot(account="main", taken_at=taken_at, state=state, risk=risk)


def observe(snap: Snapshot | None = None, **kwargs: object) -> Observation:
    return Observation(account="main", poll_interval=POLL, snapshot=snap, **kwargs)  # type: ignore[arg-type]


def margin_rule(
    *,
    debounce: float = 0.0,
    repeat: float | None = None,
    band: float = 0.2,
    levels: tuple[tuple[Severity, float], ...] = (
        (Severity.WARNING, 3.0),
        (Severity.CRITICAL, 1.5),
        (Severity.EMERGENCY, 1.2),
    ),
) -> Rule:
    return Rule(
        RuleKey.MARGIN_RATIO,
        levels,
        clear_band=band,
        debounce=timedelta(seconds=debounce),
        repeat=timedelta(seconds=repeat) if repeat is not None else None,
    )


def rules(*items: Rule) -> AlertRules:
    return AlertRules(items)


def run(
    alert_rules: AlertRules,
    steps: Sequence[tuple[float, Observation]],
    states: dict[str, dict[str, object]] | None = None,
) -> tuple[list[Evaluation], dict[str, dict[str, object]]]:
    """Evaluate a series of (seconds after T0, observation), storing the state as JSON in between
    (as the database does), and return every cycle's result and the final state."""
    current: dict[str, dict[str, object]] = states or {}
    results = []
    for seconds, observation in steps:
        result = evaluate(alert_rules, current, observation, at(seconds))
        current = json.loads(json.dumps(result.states, allow_nan=False))
        results.append(result)
    return results, current


def ratios(
    alert_rules: AlertRules, series: Sequence[tuple[float, float]], **kwargs: object
) -> list[Evaluation]:
    """Evaluate margin ratios `(seconds, ratio)` one cycle each."""
    results, _ = run(
        alert_rules, [(t, observe(snapshot(r, taken_at=at(t)), **kwargs)) for t, r in series]
    )
    return results


def sent(results: list[Evaluation]) -> list[tuple[str, str, str]]:
    """(rule, kind, severity) of every notification, in order."""
    return [(n.rule, n.kind.value, n.severity.value) for r in results for n in r.notifications]
