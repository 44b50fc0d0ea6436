"""check-config --connect's view of an account: reachability, key permissions, modes."""

from __future__ import annotations

from monitor.simulator.server import SimulatorServer
from tests.exchanges.conftest import ClientFactory


async def test_ip_restricted_binance_futures_key_in_one_way_mode(client_for: ClientFactory) -> None:
    report = await client_for("bn-oneway").probe()
    assert report.reachable
    assert report.error is None
    # enableFutures is needed to read futures data and also allows futures trading.
    assert report.can_trade is True
    assert report.can_withdraw is False
    assert "ipRestrict" in report.permissions
    assert report.position_mode == "one-way"
    assert report.margin_modes == ("cross", "isolated")
    [warning] = report.warnings
    assert "no read-only futures key" in warning
    assert "restrict it" not in warning


async def test_binance_key_that_can_trade_and_withdraw_is_flagged(
    client_for: ClientFactory,
) -> None:
    report = await client_for("bn-hedge").probe()
    assert report.can_trade is True
    assert report.can_withdraw is True
    assert report.position_mode == "hedge"
    assert any("WITHDRAW" in warning for warning in report.warnings)
    assert any("can trade spot" in warning for warning in report.warnings)
    assert any("restrict it to this host's IP" in warning for warning in report.warnings)


async def test_bybit_modes_and_permissions(client_for: ClientFactory) -> None:
    isolated = await client_for("by-isolated").probe()
    assert isolated.margin_modes == ("isolated",)
    assert isolated.position_mode == "one-way"
    assert isolated.can_withdraw is False
    assert isolated.can_trade is False
    assert isolated.warnings == ()
    hedge = await client_for("by-hedge").probe()
    assert hedge.position_mode == "hedge"
    assert hedge.margin_modes == ("cross",)


async def test_rejected_key_is_reachable_but_reported(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    sim.inject_fault("auth", account="by-cross")
    report = await client_for("by-cross").probe()
    assert report.reachable
    assert report.error is not None
    assert "rejected the API key" in report.error


async def test_unreachable_venue_is_reported(
    sim: SimulatorServer, client_for: ClientFactory
) -> None:
    client = client_for("bn-oneway")
    await sim.stop()
    report = await client.probe()
    assert not report.reachable
    assert report.error is not None
