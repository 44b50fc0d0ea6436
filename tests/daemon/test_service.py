"""The poll cycle in-process with real parts: ccxt against the simulator, the alert rules, an
SQLite store. A failing account never stalls another; an outage raises the stale-data alert; a
rejected key raises the API-key alert; the cycle's rows land together."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.alerts import AlertsSettings, account_rules
from monitor.domain.model import Venue
from monitor.exchanges import ExchangeHub
from monitor.ports import SystemClock
from monitor.service import ErrorKind, PollService, WatchedAccount
from monitor.simulator.server import SimulatorServer
from monitor.storage.repository import SqlStore
from tests.daemon.e2e_support import Recorder, half_written_snapshots, snapshot_counts
from tests.support.simulator import account_settings

INTERVAL = timedelta(seconds=1)


async def _watch(
    service: PollService, store: SqlStore, hub: ExchangeHub, sim: SimulatorServer, name: str
) -> None:
    settings = account_settings(sim, name, Venue.BINANCE_USDM, poll_interval=INTERVAL)
    await store.register_account(
        name,
        venue=settings.venue.value,
        asset=settings.asset,
        poll_interval=1.0,
        now=datetime.now(UTC),
    )
    rules = account_rules(AlertsSettings.model_validate({"stale": {"after": 2}}), None, name)
    await service.watch(WatchedAccount(name, hub.client_for(name, settings), rules, INTERVAL))


async def test_a_failing_account_does_not_stall_the_other_and_goes_stale(
    tmp_path: Path, sim: SimulatorServer, store: SqlStore, hub: ExchangeHub
) -> None:
    recorder = Recorder()
    service = PollService(store, SystemClock(), ["console"], [recorder])
    for name in ("main", "spare"):
        await _watch(service, store, hub, sim, name)
    first = await asyncio.gather(service.poll("main"), service.poll("spare"))
    assert [r.error_kind for r in first] == [None, None]

    sim.inject_fault("server_error", account="main", status=503)
    stale = []
    for _ in range(5):
        main, spare = await asyncio.gather(service.poll("main"), service.poll("spare"))
        assert main.error_kind is ErrorKind.UNAVAILABLE
        assert main.snapshot is None
        assert spare.error_kind is None
        assert spare.snapshot is not None
        stale += [n for n in main.notifications if n.rule == "stale"]
        await asyncio.sleep(0.6)  # time passes between cycles: the stale alert counts it
    assert [(n.kind.value, n.severity.value) for n in stale] == [("firing", "critical")]
    assert "failing: main (unavailable)" in service.status_line()

    sim.clear_faults()
    recovered = await service.poll("main")
    assert recovered.error_kind is None
    assert [(n.rule, n.kind.value) for n in recovered.notifications] == [("stale", "resolved")]
    assert service.status_line().startswith("2/2 accounts ok")
    counts = snapshot_counts(tmp_path)
    assert counts == {"main": 2, "spare": 6}
    assert half_written_snapshots(tmp_path, positions=2) == 0
    assert await store.depth() == 2  # the stale alert and its resolution, queued for the console


async def test_a_rejected_key_raises_the_api_key_alert(
    sim: SimulatorServer, store: SqlStore, hub: ExchangeHub
) -> None:
    service = PollService(store, SystemClock(), ["console"])
    await _watch(service, store, hub, sim, "main")
    sim.inject_fault("auth", account="main")
    report = await service.poll("main")
    assert report.error_kind is ErrorKind.AUTH
    assert [(n.rule, n.kind.value) for n in report.notifications] == [("auth", "firing")]


async def test_alert_state_survives_a_new_service(
    sim: SimulatorServer, store: SqlStore, hub: ExchangeHub
) -> None:
    service = PollService(store, SystemClock(), ["console"])
    await _watch(service, store, hub, sim, "main")
    sim.inject_fault("auth", account="main")
    assert (await service.poll("main")).notifications

    # A restarted daemon loads the stored state: the firing alert is neither repeated nor lost.
    restarted = PollService(store, SystemClock(), ["console"])
    await _watch(restarted, store, hub, sim, "main")
    assert (await restarted.poll("main")).notifications == ()
    sim.clear_faults()
    resolved = await restarted.poll("main")
    assert [(n.rule, n.kind.value) for n in resolved.notifications] == [("auth", "resolved")]


async def test_unreadable_alert_state_keeps_storing_snapshots_and_says_so_once(
    tmp_path: Path, sim: SimulatorServer, store: SqlStore, hub: ExchangeHub
) -> None:
    # A state written by a newer version (after a downgrade): the rules cannot run on it.
    service = PollService(store, SystemClock(), ["console"])
    await store.register_account(
        "main", venue="binance-usdm", asset="USDT", poll_interval=1.0, now=datetime.now(UTC)
    )
    async with store.cycle() as cycle:
        await cycle.save_alert_states("main", {"margin_ratio": {"version": 99}})
    await _watch(service, store, hub, sim, "main")
    reports = [await service.poll("main") for _ in range(3)]
    assert [r.error_kind for r in reports] == [ErrorKind.ALERTS] * 3
    assert all(r.snapshot is not None for r in reports)
    assert snapshot_counts(tmp_path) == {"main": 3}
    told = [n for r in reports for n in r.notifications]
    assert [(n.kind.value, n.severity.value) for n in told] == [("system", "critical")]
    assert "no alert rule can be checked" in told[0].text
    assert "alert_state.main.margin_ratio.version" in told[0].text
    assert await store.depth() == 1
    assert "failing: main (alerts)" in service.status_line()
    assert await store.load_alert_states("main") == {"margin_ratio": {"version": 99}}


async def test_the_margin_model_is_logged_when_first_seen(
    sim: SimulatorServer, store: SqlStore, hub: ExchangeHub, caplog: pytest.LogCaptureFixture
) -> None:
    service = PollService(store, SystemClock(), ["console"])
    await _watch(service, store, hub, sim, "main")
    with caplog.at_level("INFO", logger="monitor.service"):
        await service.poll("main")
        await service.poll("main")
    lines = [r.getMessage() for r in caplog.records if "margin model" in r.getMessage()]
    assert lines == ["account=main margin model: single-asset (figures in USDT)"]
