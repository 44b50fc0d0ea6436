"""Prometheus gauges follow the snapshots, drop closed positions and serve over HTTP."""

from __future__ import annotations

import math
import socket
import urllib.request
from dataclasses import replace

import pytest

from monitor.domain.errors import MonitorError
from monitor.metrics import Metrics
from tests.daemon.metrics_support import longs, sample


def test_gauges_follow_the_snapshot() -> None:
    metrics = Metrics()
    snapshot = longs("BTCUSDT", "ETHUSDT")
    metrics.observe_snapshot(snapshot)
    assert (
        sample(metrics, "portfolio_monitor_margin_ratio", account="main")
        == snapshot.risk.margin_ratio
    )
    assert (
        sample(metrics, "portfolio_monitor_equity", account="main", asset="USDT")
        == snapshot.risk.equity
    )
    distance = sample(
        metrics,
        "portfolio_monitor_liquidation_distance",
        account="main",
        symbol="ETHUSDT",
        side="long",
    )
    assert distance is not None
    assert distance == snapshot.risk.positions[1].distance_to_liquidation
    assert (
        sample(metrics, "portfolio_monitor_last_successful_poll_timestamp_seconds", account="main")
        == snapshot.taken_at.timestamp()
    )

    metrics.observe_snapshot(longs("BTCUSDT"))
    assert (
        sample(
            metrics,
            "portfolio_monitor_liquidation_distance",
            account="main",
            symbol="ETHUSDT",
            side="long",
        )
        is None
    )


def test_no_positions_means_nan_not_zero() -> None:
    metrics = Metrics()
    metrics.observe_snapshot(longs())
    ratio = sample(metrics, "portfolio_monitor_margin_ratio", account="main")
    assert ratio is not None
    assert math.isnan(ratio)


def test_poll_errors_and_forget() -> None:
    metrics = Metrics()
    metrics.observe_snapshot(longs("BTCUSDT"))
    metrics.observe_poll("main", 0.2, None)
    metrics.observe_poll("main", 0.4, "unavailable")
    assert (
        sample(metrics, "portfolio_monitor_poll_errors_total", account="main", kind="unavailable")
        == 1
    )
    assert sample(metrics, "portfolio_monitor_poll_duration_seconds_count", account="main") == 2
    metrics.forget_account("main")
    assert sample(metrics, "portfolio_monitor_margin_ratio", account="main") is None
    assert (
        sample(metrics, "portfolio_monitor_poll_errors_total", account="main", kind="unavailable")
        is None
    )
    assert sample(metrics, "portfolio_monitor_equity", account="main", asset="USDT") is None


def test_http_endpoint() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = Metrics()
    metrics.observe_snapshot(longs("BTCUSDT"))
    metrics.outbox_depth.set(3)
    metrics.serve("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        metrics.close()
    assert 'portfolio_monitor_margin_ratio{account="main"}' in body
    assert "portfolio_monitor_outbox_depth 3.0" in body


@pytest.mark.parametrize("host", ["127.0.0.1", "no-such-host.invalid"])
def test_an_address_that_cannot_be_bound_names_metrics_listen(host: str) -> None:
    # Before, the daemon died with an OSError traceback after opening everything else.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MonitorError, match=rf"^metrics.listen {host}:{port}: \w"):
            Metrics().serve(host, port)


def test_equity_follows_a_reload_to_another_margin_pool() -> None:
    metrics = Metrics()
    usdt = longs("BTCUSDT")
    metrics.observe_snapshot(usdt)
    assert sample(metrics, "portfolio_monitor_equity", account="main", asset="USDT") is not None
    # `asset = "USDC"` set for the account and SIGHUP: the next snapshot is of the USDC pool.
    usdc = replace(usdt, state=replace(usdt.state, asset="USDC"))
    metrics.observe_snapshot(usdc)
    assert sample(metrics, "portfolio_monitor_equity", account="main", asset="USDT") is None
    assert (
        sample(metrics, "portfolio_monitor_equity", account="main", asset="USDC")
        == usdc.risk.equity
    )
    metrics.forget_account("main")
    assert sample(metrics, "portfolio_monitor_equity", account="main", asset="USDC") is None


def test_a_scrape_shows_the_latest_snapshot_since_the_last_one() -> None:
    """Gauges are set when the registry is read (live marks recompute every account every
    second): several snapshots between two scrapes show as the last one, closed positions gone."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = Metrics()
    metrics.serve("127.0.0.1", port)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    try:
        metrics.observe_snapshot(longs("BTCUSDT", "ETHUSDT"))
        assert 'symbol="ETHUSDT"' in scrape()
        poorer = longs("BTCUSDT", wallet=5.0)
        for snapshot in (longs("BTCUSDT", "ETHUSDT", wallet=8.0), poorer):
            metrics.observe_snapshot(snapshot)
        body = scrape()
    finally:
        metrics.close()
    assert 'symbol="ETHUSDT"' not in body
    assert f'portfolio_monitor_equity{{account="main",asset="USDT"}} {poorer.risk.equity}' in body
