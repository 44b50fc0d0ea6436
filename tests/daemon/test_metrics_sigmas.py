"""Prometheus gauges of the sigma figures: set per horizon, NaN where unknown, gone with the position."""

from __future__ import annotations

import math

import pytest

from monitor.domain.volatility import SymbolVolatility
from monitor.metrics import Metrics
from tests.daemon.metrics_support import BTC, longs, sample, with_volatility


def test_sigma_gauges_follow_the_snapshot_and_drop_closed_positions() -> None:
    metrics = Metrics()
    both = with_volatility(longs("BTCUSDT", "ETHUSDT"), BTC, SymbolVolatility("ETHUSDT"))
    metrics.observe_snapshot(both)
    volatility = both.risk.volatility
    assert volatility is not None
    move = sample(metrics, "portfolio_monitor_account_move_sigmas", account="main", horizon="daily")
    # The pool's sigma needs every cross position's: ETH's is unknown, so the move is NaN.
    assert move is not None
    assert math.isnan(move)
    btc = sample(
        metrics,
        "portfolio_monitor_liquidation_distance_sigmas",
        account="main",
        symbol="BTCUSDT",
        side="long",
        horizon="hourly",
    )
    assert btc == pytest.approx(volatility.positions[0].hourly)
    metrics.observe_snapshot(with_volatility(longs("BTCUSDT"), BTC))
    labels = {"account": "main", "symbol": "ETHUSDT", "side": "long", "horizon": "daily"}
    assert sample(metrics, "portfolio_monitor_liquidation_distance_sigmas", **labels) is None
    move = sample(metrics, "portfolio_monitor_account_move_sigmas", account="main", horizon="daily")
    assert move is not None
    assert not math.isnan(move)


def test_without_volatility_there_are_no_sigma_series_and_forget_drops_them() -> None:
    metrics = Metrics()
    metrics.observe_snapshot(with_volatility(longs("BTCUSDT"), BTC))
    metrics.observe_snapshot(longs("BTCUSDT"))
    labels = {"account": "main", "horizon": "hourly"}
    assert sample(metrics, "portfolio_monitor_account_move_sigmas", **labels) is None
    metrics.observe_snapshot(with_volatility(longs("BTCUSDT"), BTC))
    metrics.forget_account("main")
    assert sample(metrics, "portfolio_monitor_account_move_sigmas", **labels) is None
