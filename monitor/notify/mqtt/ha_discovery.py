"""Home Assistant MQTT discovery and the per-account state document: pure builders, no I/O.

One HA device per account, one sensor per figure. The state topic carries plain ratios (2.0 =
200 %), like every other output of the project; the discovery templates turn them into percent.
Sensors become `unavailable` when the daemon's last will fires (availability topic) or when no
state arrives for `expire_after` (about three poll intervals: a stuck poller while MQTT is up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monitor.domain.alerts.measure import nearest_liquidation
from monitor.domain.model import Snapshot
from monitor.domain.stops import StopStatus, position_stops
from monitor.domain.volatility import SIGMA, Horizon

ORIGIN_NAME = "portfolio-monitor"
# A Jinja template that keeps a missing figure "None" (HA shows unknown) instead of failing.
_PERCENT = (
    "{{{{ (value_json.{key} * 100) | round(4) if value_json.{key} is not none else 'None' }}}}"
)
_PLAIN = "{{{{ value_json.{key} if value_json.{key} is not none else 'None' }}}}"


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """One Home Assistant sensor fed from the state document."""

    key: str
    name: str
    percent: bool
    precision: int
    icon: str
    unit: str | None = None


# The account move and the nearest liquidation in typical moves of the symbols (sigmas).
SIGMA_SENSORS = tuple(
    SensorSpec(
        f"{what}_sigmas_{horizon.value}",
        f"{title} in {horizon.value} sigmas",
        False,
        1,
        "mdi:sigma",
        SIGMA,
    )
    for what, title in (("account_move", "Account move"), ("nearest", "Nearest liquidation"))
    for horizon in Horizon
)


SENSORS = (
    SensorSpec("margin_ratio", "Margin ratio", True, 1, "mdi:gauge"),
    SensorSpec("exchange_margin_ratio", "Exchange margin ratio", True, 1, "mdi:gauge-low"),
    SensorSpec("equity", "Equity", False, 2, "mdi:wallet"),
    SensorSpec(
        "account_liquidation_move", "Account move to liquidation", True, 2, "mdi:chart-bell-curve"
    ),
    SensorSpec("nearest_liquidation_price", "Nearest liquidation price", False, 2, "mdi:target"),
    SensorSpec(
        "distance_to_liquidation", "Distance to liquidation", True, 2, "mdi:arrow-expand-vertical"
    ),
    *SIGMA_SENSORS,
    SensorSpec(
        "positions_without_stop", "Positions without effective stop", False, 0, "mdi:shield-off"
    ),
)


def topic_name(account: str) -> str:
    """The account name as one MQTT topic level (no separators or wildcards)."""
    return "".join("_" if c in "/+#" else c for c in account) or "_"


def object_id(account: str) -> str:
    """The account name as a Home Assistant object id: lower-case letters, digits and '_'."""
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in account.lower())


def state_topic(prefix: str, account: str) -> str:
    """Retained JSON state of one account."""
    return f"{prefix}/{topic_name(account)}/state"


def alert_topic(prefix: str, account: str) -> str:
    """Non-retained alert events of one account."""
    return f"{prefix}/{topic_name(account)}/alert"


def availability_topic(prefix: str) -> str:
    """Retained "online"/"offline" of the daemon; the broker publishes "offline" if it dies."""
    return f"{prefix}/availability"


def discovery_topic(discovery_prefix: str, unique_id: str) -> str:
    """Where HA looks for a sensor's config (object id = unique id, no node id, as HA advises)."""
    return f"{discovery_prefix}/sensor/{unique_id}/config"


def discovery_configs(
    *,
    account: str,
    poll_interval: float,
    topic_prefix: str,
    discovery_prefix: str,
    version: str,
    asset: str = "USDT",
    venue: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, payload) of every sensor config for one account, to publish retained."""
    device_id = f"portfolio_monitor_{object_id(account)}"
    device = {
        "identifiers": [device_id],
        "name": f"Portfolio monitor ({venue}:{account})"
        if venue
        else f"Portfolio monitor ({account})",
        "manufacturer": "portfolio-monitor",
        "model": venue or "futures account",
        "sw_version": version,
    }
    expire_after = max(1, math.ceil(3 * poll_interval))
    configs = []
    for sensor in SENSORS:
        unique_id = f"{device_id}_{sensor.key}"
        template = (_PERCENT if sensor.percent else _PLAIN).format(key=sensor.key)
        config: dict[str, Any] = {
            "name": sensor.name,
            "unique_id": unique_id,
            "default_entity_id": f"sensor.{unique_id}",
            "state_topic": state_topic(topic_prefix, account),
            "value_template": template,
            "availability_topic": availability_topic(topic_prefix),
            "state_class": "measurement",
            "suggested_display_precision": sensor.precision,
            "expire_after": expire_after,
            "icon": sensor.icon,
            "device": device,
            "origin": {"name": ORIGIN_NAME, "sw_version": version},
        }
        if sensor.percent:
            config["unit_of_measurement"] = "%"
        elif sensor.unit is not None:
            config["unit_of_measurement"] = sensor.unit
        elif sensor.key == "equity":
            # No device_class "monetary": HA rejects it together with state_class measurement.
            config["unit_of_measurement"] = asset
        elif sensor.key == "positions_without_stop":
            config["json_attributes_topic"] = state_topic(topic_prefix, account)
            config["json_attributes_template"] = (
                '{{ {"positions": value_json.unprotected_positions, '
                '"beyond_liquidation": value_json.stops_beyond_liquidation} | tojson }}'
            )
        else:
            config["json_attributes_topic"] = state_topic(topic_prefix, account)
            config["json_attributes_template"] = (
                '{{ {"symbol": value_json.nearest_liquidation_symbol} | tojson }}'
            )
        configs.append((discovery_topic(discovery_prefix, unique_id), config))
    return configs


def state_document(snapshot: Snapshot) -> dict[str, Any]:
    """The retained state of one account: both ratio conventions, equity, the account-wide move
    and the position nearest to liquidation."""
    risk = snapshot.risk
    nearest = nearest_liquidation(snapshot)
    return {
        "account": snapshot.account,
        "venue": snapshot.state.venue.value,
        "asset": snapshot.state.asset,
        "equity": risk.equity,
        "maintenance_margin": risk.maintenance_margin,
        "margin_ratio": risk.margin_ratio,
        "exchange_margin_ratio": risk.exchange_margin_ratio,
        "account_liquidation_move": risk.account_liquidation_move,
        "nearest_liquidation_symbol": nearest.symbol if nearest else None,
        "nearest_liquidation_side": nearest.side.value if nearest else None,
        "nearest_liquidation_price": nearest.liquidation_price if nearest else None,
        "distance_to_liquidation": nearest.distance_to_liquidation if nearest else None,
        "positions": len(risk.positions),
        **_stop_fields(snapshot),
        "updated_at": snapshot.taken_at.isoformat(),
        **sigma_state(snapshot),
    }


def sigma_state(snapshot: Snapshot) -> dict[str, Any]:
    """The account move and the nearest position's distance in sigmas of a 1 h and a 1 d move
    (None where unknown, or without volatility)."""
    volatility = snapshot.risk.volatility
    document: dict[str, Any] = {}
    for horizon in Horizon:
        move = None if volatility is None else volatility.move(horizon)
        nearest = None
        if volatility is not None:
            known = [d for p in volatility.positions if (d := p.of(horizon)) is not None]
            nearest = min(known, default=None)
        document[f"account_move_sigmas_{horizon.value}"] = move
        document[f"nearest_sigmas_{horizon.value}"] = nearest
    return document


def _stop_fields(snapshot: Snapshot) -> dict[str, Any]:
    """Positions without an effective stop (none, or beyond the liquidation price): a count
    (None while the orders are unknown), the count beyond liquidation, and their names."""
    unprotected, beyond, known = [], 0, False
    for position, stop in zip(snapshot.state.positions, position_stops(snapshot.risk), strict=True):
        if stop.status is StopStatus.UNKNOWN:
            continue
        known = True
        if not stop.status.effective:
            unprotected.append(f"{position.symbol} {position.side.value}")
        beyond += stop.status is StopStatus.BEYOND_LIQUIDATION
    return {
        "positions_without_stop": len(unprotected) if known else None,
        "stops_beyond_liquidation": beyond if known else None,
        "unprotected_positions": ", ".join(unprotected),
    }
