"""Alert rules on pooled accounts: Portfolio Margin's own liquidation ratio, venue figures labelled."""

from __future__ import annotations

from dataclasses import replace

from monitor.domain.alerts import Rule, RuleKey, evaluate
from monitor.domain.model import Collateral, PoolModel, Snapshot, VenueTerm
from monitor.domain.notification import Severity
from tests.domain.alerts.builders import at, margin_rule, observe, position, rules, snapshot


def portfolio(ratio: float) -> Snapshot:
    snap = snapshot(ratio)
    state = replace(
        snap.state,
        model=PoolModel.PORTFOLIO,
        liquidation_ratio=1.05,
        asset="USD",
        venue_terms=(VenueTerm("margin loans (venue figure)", maintenance_margin=12.5),),
    )
    return replace(snap, state=state)


def test_portfolio_margin_is_judged_against_liquidation_at_105_percent() -> None:
    # uniMMR 1.25 reads as safe against a 120 % level written for liquidation at 100 %, but it is
    # only 119 % of what Binance's 105 % trigger needs: the emergency level fires.
    levels = ((Severity.WARNING, 3.0), (Severity.CRITICAL, 1.5), (Severity.EMERGENCY, 1.2))
    result = evaluate(rules(margin_rule(levels=levels)), {}, observe(portfolio(1.25)), at(0))
    [notification] = result.notifications
    assert notification.severity is Severity.EMERGENCY
    assert "liquidation at 105 %" in notification.text
    assert "Includes venue figures we cannot model: margin loans (venue figure) 12.50 USD" in (
        notification.text
    )


def test_a_single_asset_pool_keeps_reading_the_plain_ratio() -> None:
    result = evaluate(rules(margin_rule()), {}, observe(snapshot(1.25)), at(0))
    [notification] = result.notifications
    assert notification.severity is Severity.CRITICAL
    assert "liquidation at" not in notification.text


def test_a_price_that_moves_collateral_is_not_compared_with_the_venues() -> None:
    # BTC collateral behind a BTC long: our price moves the collateral, the venue may not; the two
    # are not like with like, so no mismatch alert (a USDT-only pool is still compared).
    mismatch = Rule(RuleKey.LIQUIDATION_MISMATCH, ((Severity.WARNING, 0.02),), clear_band=0.5)
    held = replace(position(exchange_liq=54_000.0), underlying="BTC", settle_asset="USDT")
    snap = snapshot(4.0, liq=52_000.0, positions=(held,))
    pooled = replace(
        snap.state,
        asset="USD",
        model=PoolModel.UNIFIED,
        collateral=(Collateral("USDT", 0.0, 1.0, stable=True), Collateral("BTC", 1.0, 58_000.0)),
    )
    backed = evaluate(rules(mismatch), {}, observe(replace(snap, state=pooled)), at(0))
    assert backed.notifications == ()
    stable_only = replace(pooled, collateral=pooled.collateral[:1])
    compared = evaluate(rules(mismatch), {}, observe(replace(snap, state=stable_only)), at(0))
    [notification] = compared.notifications
    assert notification.rule == "liquidation_mismatch"
