"""contrib/grafana's dashboard queries only metrics and labels the daemon really exports."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import Metrics
from tests.daemon.e2e_support import scrape_metrics
from tests.daemon.metrics_support import BTC, longs, with_volatility

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "portfolio-monitor.json"
METRIC = re.compile(r"\bportfolio_monitor_[a-z0-9_]+")
# Sample names Prometheus derives from a family of each type.
SUFFIXES = {
    "gauge": ("",),
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _scrape() -> str:
    """Every family with at least one series, served over HTTP as Prometheus scrapes it."""
    metrics = Metrics()
    metrics.observe_snapshot(with_volatility(longs("BTCUSDT"), BTC))
    metrics.observe_poll("main", 0.3, "unavailable")
    metrics.sink_up.labels("phone").set(1)
    metrics.outbox_depth.set(0)
    metrics.stream_live.labels("main").set(1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.serve("127.0.0.1", port)
    try:
        return scrape_metrics(port)
    finally:
        metrics.close()


def test_dashboard_queries_only_exported_metrics_and_labels() -> None:
    exported: dict[str, set[str]] = {}  # sample name -> its label names
    for family in text_string_to_metric_families(_scrape()):
        assert family.samples, f"{family.name}: no series; the test must set one"
        labels = set().union(*(sample.labels for sample in family.samples)) - {"le"}
        for suffix in SUFFIXES[family.type]:
            exported[family.name + suffix] = labels
    dashboard = json.loads(DASHBOARD.read_text())
    queried = set()
    for text in _strings(dashboard):
        for name in METRIC.findall(text):
            assert name in exported, f"the dashboard queries {name}, which is not exported"
            queried.add(name)
    # What a trader and an operator look at: every risk figure and every health signal.
    assert {
        "portfolio_monitor_margin_ratio",
        "portfolio_monitor_exchange_margin_ratio",
        "portfolio_monitor_account_liquidation_move",
        "portfolio_monitor_liquidation_distance",
        "portfolio_monitor_account_move_sigmas",
        "portfolio_monitor_liquidation_distance_sigmas",
        "portfolio_monitor_equity",
        "portfolio_monitor_last_successful_poll_timestamp_seconds",
        "portfolio_monitor_poll_errors_total",
        "portfolio_monitor_poll_duration_seconds_bucket",
        "portfolio_monitor_sink_up",
        "portfolio_monitor_outbox_depth",
        "portfolio_monitor_storage_ok",
    } <= queried
    # Labels in selectors, `by (...)` clauses and legends exist on the metrics queried.
    every_label = set().union(*exported.values())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            names = set(METRIC.findall(target["expr"]))
            available = set().union(*(exported[name] for name in names)) | {"le"}
            used = set(re.findall(r"(\w+)=~?\"", target["expr"]))
            used |= {
                label.strip()
                for clause in re.findall(r"by \(([^)]*)\)", target["expr"])
                for label in clause.split(",")
            }
            used |= set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]))
            assert used <= available, (panel["title"], used - available)
            assert used <= every_label | {"le"}


def test_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "portfolio-monitor"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert variables == {"datasource", "account"}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        # The Prometheus data source is chosen on import, never a uid of someone's Grafana.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
