"""`portfolio-monitor run` as a subprocess against the simulator, a real mosquitto and a local
JSON webhook: alerts fire and resolve on both sinks, SIGTERM is clean, kill -9 loses nothing,
SIGHUP reloads, systemd hears READY / WATCHDOG / STOPPING."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator.server import SimulatorServer
from tests.daemon.e2e_support import (
    Endpoints,
    MqttRecorder,
    btc_price_for_ratio,
    half_written_snapshots,
    scrape_metrics,
    snapshot_counts,
    write_config,
)
from tests.support.daemon import BINARY, DaemonProcess
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.mqtt]

# Between the default critical (150 %) and warning (300 %) levels, and below critical but above
# emergency (120 %).
WARNING_PRICE = btc_price_for_ratio(2.4)
CRITICAL_PRICE = btc_price_for_ratio(1.35)
STOP_TIMEOUT = 30.0  # the unit's TimeoutStopSec


@pytest.fixture
def endpoints(
    sim: SimulatorServer,
    mosquitto: Mosquitto,
    hook: WebhookReceiver,
) -> Endpoints:
    keys = {name: (info.api_key, info.api_secret) for name, info in sim.accounts.items()}
    return Endpoints(sim.base_url, keys, mosquitto.port, hook.url)


def _events(
    payloads: list[dict[str, Any]], event: str, severity: str | None = None
) -> list[dict[str, Any]]:
    return [
        p
        for p in payloads
        if p.get("rule") == "margin_ratio"
        and p.get("event") == event
        and (severity is None or p.get("severity") == severity)
    ]


def _slow_answers(sim: SimulatorServer, account: str) -> int:
    return sum(1 for r in sim.request_log if r.fault == "timeout" and r.account == account)


def _ids(payloads: list[dict[str, Any]]) -> set[str]:
    return {str(p["id"]) for p in payloads}


async def _start(daemon: DaemonProcess) -> None:
    # The simulator answers on this event loop, so block only in a worker thread.
    await asyncio.to_thread(daemon.start)


async def _terminate(daemon: DaemonProcess) -> int:
    return await asyncio.to_thread(daemon.terminate, STOP_TIMEOUT)


async def test_crash_alerts_reach_both_sinks_and_sigterm_is_clean(
    tmp_path: Path,
    sim: SimulatorServer,
    hook: WebhookReceiver,
    endpoints: Endpoints,
    mosquitto: Mosquitto,
) -> None:
    state = tmp_path / "state"
    metrics_port = free_port()
    config = write_config(tmp_path / "config.toml", state, endpoints, metrics_port=metrics_port)
    async with MqttRecorder(mosquitto).running() as mqtt:
        daemon = DaemonProcess(config, tmp_path)
        try:
            await _start(daemon)
            await wait_until(
                lambda: snapshot_counts(state).get("main", 0) >= 3, 20, "snapshots", daemon.log
            )
            assert _events(hook.payloads, "firing") == []

            sim.set_price("BTC", WARNING_PRICE)
            await hook.wait_for(lambda p: bool(_events([p], "firing", "warning")), within=15)
            sim.set_price("BTC", CRITICAL_PRICE)
            await hook.wait_for(lambda p: bool(_events([p], "firing", "critical")), within=15)
            sim.set_price("BTC", None)
            await hook.wait_for(lambda p: bool(_events([p], "resolved")), within=15)

            # The same three notifications reach MQTT, as non-retained alert events.
            await wait_until(
                lambda: len(_events(mqtt.alerts("main"), "resolved")) == 1,
                10,
                "MQTT resolved",
                daemon.log,
            )
            assert [
                (p["event"], p["severity"]) for p in _events(mqtt.alerts("main"), "firing")
            ] == [
                ("firing", "warning"),
                ("firing", "critical"),
            ]
            state_message = mqtt.last("portfolio_monitor/main/state")
            assert state_message is not None
            assert state_message.payload
            online = mqtt.last("portfolio_monitor/availability")
            assert online is not None
            assert online.payload == b"online"

            # Exactly once each on the webhook (ids are the dedup key; none repeated).
            ids = [p["id"] for p in hook.payloads]
            assert len(ids) == len(set(ids))
            assert len(_events(hook.payloads, "firing", "warning")) == 1
            assert len(_events(hook.payloads, "firing", "critical")) == 1
            assert len(_events(hook.payloads, "resolved")) == 1

            metrics = await asyncio.to_thread(scrape_metrics, metrics_port)
            assert 'portfolio_monitor_margin_ratio{account="main"}' in metrics
            assert 'portfolio_monitor_poll_duration_seconds_count{account="main"}' in metrics

            daemon.notify.wait_for("WATCHDOG=1", timeout=5, times=2)
            assert daemon.notify.count("READY=1") == 1
            assert any(
                field.startswith("STATUS=1/1 accounts ok") for field in daemon.notify.fields()
            )

            assert await _terminate(daemon) == 0
        finally:
            daemon.__exit__(None, None, None)
        assert "STOPPING=1" in daemon.notify.fields()
        await wait_until(
            lambda: (
                getattr(mqtt.last("portfolio_monitor/availability"), "payload", None) == b"offline"
            ),
            5,
            "MQTT offline",
        )
    assert half_written_snapshots(state, positions=2) == 0


async def test_kill_9_then_restart_neither_loses_nor_repeats(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver, endpoints: Endpoints
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "config.toml", state, endpoints)
    daemon = DaemonProcess(config, tmp_path)
    try:
        await _start(daemon)
        await wait_until(
            lambda: snapshot_counts(state).get("main", 0) >= 2, 20, "snapshots", daemon.log
        )
        # The webhook is down when the alert fires: the outbox keeps it and retries.
        hook.fail_with = 503
        sim.set_price("BTC", WARNING_PRICE)
        await wait_until(
            lambda: "outbox: hook failed" in daemon.log(),
            15,
            "a failed delivery",
            daemon.log,
        )
        hook.fail_with = None
        await hook.wait_for(lambda p: bool(_events([p], "firing", "warning")), within=15)
        before_kill = snapshot_counts(state)["main"]
        await asyncio.to_thread(daemon.kill)
        after_kill = snapshot_counts(state)["main"]
        # Every snapshot committed before the kill is still there, none half-written.
        assert after_kill >= before_kill
        assert half_written_snapshots(state, positions=2) == 0

        await _start(daemon)
        await wait_until(
            lambda: snapshot_counts(state)["main"] >= after_kill + 3,
            20,
            "snapshots after restart",
            daemon.log,
        )
        # Still firing after the restart, and not announced as a new alert. Delivery is
        # at-least-once: a kill between the webhook's answer and the outbox update re-sends the
        # same notification id, which receivers drop; a new id would be a repeat.
        assert len(_ids(_events(hook.payloads, "firing", "warning"))) == 1
        sim.set_price("BTC", None)
        await hook.wait_for(lambda p: bool(_events([p], "resolved")), within=15)
        await asyncio.sleep(1.5)  # letting time pass is the point: a duplicate would arrive by now
        assert len(_ids(_events(hook.payloads, "resolved"))) == 1
        assert await _terminate(daemon) == 0
    finally:
        daemon.__exit__(None, None, None)
    assert half_written_snapshots(state, positions=2) == 0


async def test_sighup_reloads_thresholds_and_accounts_and_rejects_a_bad_file(
    tmp_path: Path,
    sim: SimulatorServer,
    hook: WebhookReceiver,
    endpoints: Endpoints,
    mosquitto: Mosquitto,
) -> None:
    state = tmp_path / "state"
    metrics_port = free_port()
    config = write_config(tmp_path / "config.toml", state, endpoints, metrics_port=metrics_port)
    # With the broker down the daemon still starts, polls and alerts over the webhook.
    mosquitto.stop()
    daemon = DaemonProcess(config, tmp_path)
    try:
        await _start(daemon)
        await wait_until(
            lambda: snapshot_counts(state).get("main", 0) >= 2, 20, "snapshots", daemon.log
        )
        assert _events(hook.payloads, "firing") == []

        # A broken file is rejected; the daemon keeps polling with the old configuration.
        config.write_text(config.read_text() + "\n[accounts.main]\npoll_intervl = 3\n")
        daemon.signal(signal.SIGHUP)
        await wait_until(
            lambda: "reload rejected" in daemon.log(), 10, "reload rejected", daemon.log
        )
        count = snapshot_counts(state)["main"]
        await wait_until(
            lambda: snapshot_counts(state)["main"] > count + 1, 10, "polls go on", daemon.log
        )

        # The account sits at ~667 %: a warning level of 800 % makes it fire; "spare" is added.
        write_config(
            config,
            state,
            endpoints,
            accounts=("main", "spare"),
            warning_below="800%",
            metrics_port=metrics_port,
        )
        daemon.signal(signal.SIGHUP)
        await hook.wait_for(lambda p: bool(_events([p], "firing", "warning")), within=15)
        await wait_until(
            lambda: snapshot_counts(state).get("spare", 0) >= 2, 15, "spare polled", daemon.log
        )
        assert daemon.process is not None
        assert daemon.process.poll() is None

        # Removing "spare" stops its polls; main's firing alert is kept, not announced again.
        # The reload comes while a spare cycle waits for a slow exchange: that cycle ends
        # normally (its client is not closed under it) and reports nothing afterwards.
        slow = sim.inject_fault("timeout", account="spare", delay=2.5, count=1)
        await wait_until(lambda: slow.hits == 1, 10, "a slow spare request", daemon.log)
        reloads = daemon.notify.count("RELOADING=1")
        write_config(
            config,
            state,
            endpoints,
            accounts=("main",),
            warning_below="800%",
            metrics_port=metrics_port,
        )
        daemon.signal(signal.SIGHUP)
        # Edited again while that reload still runs (it waits for the slow cycle): the second
        # SIGHUP is not lost, the newest file wins once the first reload is done.
        await wait_until(
            lambda: daemon.notify.count("RELOADING=1") > reloads, 5, "RELOADING=1", daemon.log
        )
        write_config(
            config,
            state,
            endpoints,
            accounts=("main",),
            warning_below="300%",
            metrics_port=metrics_port,
        )
        daemon.signal(signal.SIGHUP)
        await wait_until(
            lambda: "account=spare removed" in daemon.log(), 10, "spare removed", daemon.log
        )
        await wait_until(lambda: _slow_answers(sim, "spare") == 1, 10, "the slow answer")
        await asyncio.sleep(0.5)  # the end of the cycle that got it
        assert "account=spare poll failed" not in daemon.log()
        assert 'account="spare"' not in await asyncio.to_thread(scrape_metrics, metrics_port)
        spare = snapshot_counts(state)["spare"]
        main = snapshot_counts(state)["main"]
        await wait_until(
            lambda: snapshot_counts(state)["main"] >= main + 2, 10, "polls", daemon.log
        )
        assert snapshot_counts(state)["spare"] == spare
        assert len(_events(hook.payloads, "firing", "warning")) == 1
        # The newest file (warning below 300 %) resolves main's warning.
        await hook.wait_for(lambda p: bool(_events([p], "resolved")), within=15)
        assert daemon.notify.count("RELOADING=1") == reloads + 2

        # SIGTERM while a cycle waits for a slow exchange: that cycle finishes and is stored.
        sim.inject_fault("timeout", account="main", delay=3)
        await wait_until(
            lambda: _slow_answers(sim, "main") > 0,
            15,
            "a slow answer",
            daemon.log,
        )
        # That slow cycle is stored by now and, 1 s later, the next one is waiting (3 s).
        await asyncio.sleep(1.3)
        before = snapshot_counts(state)["main"]
        assert await _terminate(daemon) == 0
        assert snapshot_counts(state)["main"] == before + 1
        assert half_written_snapshots(state, positions=2) == 0
    finally:
        daemon.__exit__(None, None, None)


async def test_exchange_down_at_boot_still_ready_then_stale_alert_and_recovery(
    tmp_path: Path, sim: SimulatorServer, hook: WebhookReceiver, endpoints: Endpoints
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "config.toml", state, endpoints)
    sim.inject_fault("server_error", status=503)
    daemon = DaemonProcess(config, tmp_path)
    try:
        await _start(daemon)  # READY=1 does not wait for the exchange
        stale = await hook.wait_for(
            lambda p: p.get("rule") == "stale" and p.get("event") == "firing", within=20
        )
        assert stale["account"] == "main"
        assert snapshot_counts(state).get("main", 0) == 0
        assert any(f.startswith("STATUS=0/1 accounts ok") for f in daemon.notify.fields())

        sim.clear_faults()
        await hook.wait_for(
            lambda p: p.get("rule") == "stale" and p.get("event") == "resolved", within=20
        )
        assert snapshot_counts(state)["main"] >= 1
        assert await _terminate(daemon) == 0
    finally:
        daemon.__exit__(None, None, None)


def test_bad_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\n[accounts.main]\nvenue = "binance-usdm"\n'
        'api_key = "k"\napi_secret = "s3cr3t-value"\npoll_intervl = "1s"\n'
    )
    result = subprocess.run(
        [str(BINARY), "run", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "accounts.main.poll_intervl" in result.stderr
    assert "s3cr3t-value" not in result.stderr + result.stdout


def test_state_dir_that_cannot_be_created_exits_1_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path / "file" / "state"}"\n')
    result = subprocess.run(
        [str(BINARY), "run", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot run: [Errno 20] Not a directory: '{tmp_path / 'file' / 'state'}'" in (
        result.stderr
    )
