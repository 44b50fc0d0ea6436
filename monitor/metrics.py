"""Prometheus gauges for what a trader or an operator wants on a dashboard.

Each `Metrics` owns its registry, so several daemons in one test process do not collide. The
endpoint is optional (`[metrics] listen`); without it the gauges are still kept, cheaply.

An account's gauges are set from its latest snapshot when the registry is read (a scrape), not at
every snapshot: with live marks every account is recomputed every second, and setting its ~90
series each time cost a sixth of a 1,000-account daemon's CPU, for scrapes every 15 s or more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from threading import Lock, Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.domain.errors import PermanentError
from monitor.domain.model import Snapshot
from monitor.domain.volatility import Horizon

log = logging.getLogger(__name__)


class _Pending(Collector):
    """The registry's first collector: sets the gauges of the snapshots observed since the last
    read, before the gauges themselves are collected."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush

    def collect(self) -> Iterable[Metric]:
        self._flush()
        return []


class Metrics:
    """The daemon's gauges, counters and histograms, updated after every poll cycle."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The latest snapshot of each account not yet on the gauges. The lock also guards the
        # series bookkeeping: the HTTP endpoint reads (and so flushes) from its own thread.
        self._pending: dict[str, Snapshot] = {}
        self._lock = Lock()
        r.register(_Pending(self._flush))
        self.equity = Gauge(
            "portfolio_monitor_equity", "Cross-pool equity", ["account", "asset"], registry=r
        )
        self.margin_ratio = Gauge(
            "portfolio_monitor_margin_ratio",
            "Equity / maintenance margin (1.0 = liquidation)",
            ["account"],
            registry=r,
        )
        self.exchange_margin_ratio = Gauge(
            "portfolio_monitor_exchange_margin_ratio",
            "Maintenance margin / equity as the exchange shows it (1.0 = liquidation)",
            ["account"],
            registry=r,
        )
        self.account_move = Gauge(
            "portfolio_monitor_account_liquidation_move",
            "Uniform relative move of all marks that liquidates the cross pool",
            ["account"],
            registry=r,
        )
        self.distance = Gauge(
            "portfolio_monitor_liquidation_distance",
            "|mark - liquidation price| / mark per position",
            ["account", "symbol", "side"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            "portfolio_monitor_poll_duration_seconds",
            "Duration of one poll cycle (fetch, compute, store)",
            ["account"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.poll_errors = Counter(
            "portfolio_monitor_poll_errors",
            "Poll cycles that failed, by kind",
            ["account", "kind"],
            registry=r,
        )
        self.last_success = Gauge(
            "portfolio_monitor_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll that stored a snapshot",
            ["account"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "portfolio_monitor_outbox_depth", "Notifications waiting for delivery", registry=r
        )
        self.sink_up = Gauge(
            "portfolio_monitor_sink_up",
            "1 while the sink takes alerts, 0 while it is failing or disabled (alerts held)",
            ["sink"],
            registry=r,
        )
        self.storage_ok = Gauge(
            "portfolio_monitor_storage_ok",
            "1 while the database takes writes, 0 while it refuses them (alerts from memory)",
            registry=r,
        )
        self.storage_ok.set(1)
        self.account_move_sigmas = Gauge(
            "portfolio_monitor_account_move_sigmas",
            "Account liquidation move in typical moves (sigmas) of the pool, per horizon",
            ["account", "horizon"],
            registry=r,
        )
        self.distance_sigmas = Gauge(
            "portfolio_monitor_liquidation_distance_sigmas",
            "Distance to liquidation in typical moves (sigmas) of the symbol, per horizon",
            ["account", "symbol", "side", "horizon"],
            registry=r,
        )
        self._sigma_series: dict[str, set[tuple[str, ...]]] = {}
        self.stream_live = Gauge(
            "portfolio_monitor_stream_live",
            "1 while the account's marks stream live (REST only reconciles), 0 while it is polled",
            ["account"],
            registry=r,
        )
        self._positions: dict[str, set[tuple[str, str]]] = {}
        self._assets: dict[str, str] = {}
        self._error_kinds: dict[str, set[str]] = {}
        self._server: tuple[WSGIServer, Thread] | None = None
        # Labelled series by (metric, *labels): prometheus_client's labels() validates and locks
        # on every call (a few µs), and a live recompute sets about 90 series, every second.
        self._series: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Gauge | Counter | Histogram, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = metric.labels(*labels)
        return child

    def _remove(self, metric: Gauge | Counter | Histogram, *labels: str) -> None:
        self._series.pop((metric, *labels), None)
        try:
            metric.remove(*labels)
        except KeyError:
            return

    def observe_snapshot(self, snapshot: Snapshot) -> None:
        """Every gauge of one account follows this snapshot from the next read of the registry."""
        with self._lock:
            self._pending[snapshot.account] = snapshot

    def _flush(self) -> None:
        with self._lock:
            for snapshot in self._pending.values():
                self._set_snapshot(snapshot)
            self._pending.clear()

    def _set_snapshot(self, snapshot: Snapshot) -> None:
        """Set every gauge of one account from its latest snapshot; the caller holds the lock."""
        account, risk = snapshot.account, snapshot.risk
        previous_asset = self._assets.get(account)
        if previous_asset is not None and previous_asset != snapshot.state.asset:
            # A reload moved the account to another margin pool: one equity series, not two.
            self._remove(self.equity, account, previous_asset)
        self._assets[account] = snapshot.state.asset
        self._child(self.equity, account, snapshot.state.asset).set(risk.equity)
        _set_or_nan(self._child(self.margin_ratio, account), risk.margin_ratio)
        _set_or_nan(self._child(self.exchange_margin_ratio, account), risk.exchange_margin_ratio)
        _set_or_nan(self._child(self.account_move, account), risk.account_liquidation_move)
        current = set()
        for position in risk.positions:
            key = (position.symbol, position.side.value)
            current.add(key)
            _set_or_nan(self._child(self.distance, account, *key), position.distance_to_liquidation)
        # Closed positions must disappear, not keep their last distance forever.
        for gone in self._positions.get(account, set()) - current:
            self._remove(self.distance, account, *gone)
        self._positions[account] = current
        self._observe_sigmas(snapshot)
        self._child(self.last_success, account).set(snapshot.taken_at.timestamp())

    def _observe_sigmas(self, snapshot: Snapshot) -> None:
        """The sigma gauges (NaN where unknown or nothing liquidates); none without volatility."""
        account, volatility = snapshot.account, snapshot.risk.volatility
        current: set[tuple[str, ...]] = set()
        if volatility is not None:
            for horizon in Horizon:
                _set_or_nan(
                    self._child(self.account_move_sigmas, account, horizon.value),
                    volatility.move(horizon),
                )
                current.add((horizon.value,))
                for position, sigmas in zip(
                    snapshot.risk.positions, volatility.positions, strict=True
                ):
                    key = (position.symbol, position.side.value, horizon.value)
                    _set_or_nan(
                        self._child(self.distance_sigmas, account, *key), sigmas.of(horizon)
                    )
                    current.add(key)
        for gone in self._sigma_series.get(account, set()) - current:
            gauge = self.account_move_sigmas if len(gone) == 1 else self.distance_sigmas
            self._remove(gauge, account, *gone)
        self._sigma_series[account] = current

    def observe_poll(self, account: str, seconds: float, error_kind: str | None) -> None:
        """Record one finished cycle; `error_kind` names why it failed (None = it succeeded)."""
        with self._lock:
            self._child(self.poll_seconds, account).observe(seconds)
            if error_kind is not None:
                self._error_kinds.setdefault(account, set()).add(error_kind)
                self._child(self.poll_errors, account, error_kind).inc()

    def forget_account(self, account: str) -> None:
        """Drop every series of an account removed from the configuration."""
        with self._lock:
            self._pending.pop(account, None)
            self._forget(account)

    def _forget(self, account: str) -> None:
        for position in self._positions.pop(account, set()):
            self._remove(self.distance, account, *position)
        for gauge in (self.margin_ratio, self.exchange_margin_ratio, self.account_move):
            self._remove(gauge, account)
        for series in self._sigma_series.pop(account, set()):
            gauge = self.account_move_sigmas if len(series) == 1 else self.distance_sigmas
            self._remove(gauge, account, *series)
        self._remove(self.last_success, account)
        self._remove(self.stream_live, account)
        self._remove(self.poll_seconds, account)
        asset = self._assets.pop(account, None)
        if asset is not None:
            self._remove(self.equity, account, asset)
        for kind in self._error_kinds.pop(account, set()):
            self._remove(self.poll_errors, account, kind)

    def serve(self, host: str, port: int) -> None:
        """Expose /metrics over HTTP on host:port (a background thread); MonitorError naming
        `metrics.listen` when that address cannot be bound."""
        try:
            self._server = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise PermanentError(f"metrics.listen {host}:{port}: {exc.strerror or exc}") from None
        log.info("metrics endpoint on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        """Stop the HTTP endpoint if it runs."""
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._server = None


def _set_or_nan(gauge: Gauge, value: float | None) -> None:
    # NaN, not 0, for "none": a margin ratio of 0 would look like instant liquidation.
    gauge.set(float("nan") if value is None else value)
