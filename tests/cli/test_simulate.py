"""`portfolio-monitor simulate` as a user runs it: a subprocess that prints where it listens and what
to paste, serves until SIGTERM, and exits cleanly."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.simulator import builtin_scenario_path

COMMAND = [str(Path(sys.executable).with_name("portfolio-monitor")), "simulate"]


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    return process, "".join(lines)


def test_simulate_prints_keys_and_a_config_snippet_and_stops_on_sigterm() -> None:
    process, output = _start("--port", "0", "--scenario", str(builtin_scenario_path("test")))
    try:
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", output)
        assert match, output
        base_url = match.group(1)
        with urllib.request.urlopen(
            f"{base_url}/fapi/v1/premiumIndex?symbol=BTCUSDT", timeout=5
        ) as response:
            assert json.loads(response.read())["markPrice"].startswith("60000")
        snippet = tomllib.loads(
            output.split("# Paste into config.toml:\n", 1)[1].split("Press Ctrl-C")[0]
        )
        accounts = snippet["accounts"]
        assert accounts["binance-oneway-binance-coinm-btc"]["venue"] == "binance-coinm"
        # A unified account's USDT and USDC contracts are one pool: one entry watches both.
        assert accounts["bybit-cross-bybit-linear-usdt"]["asset"] == "USDT"
        assert "bybit-cross-bybit-linear-usdc" not in accounts
        assert accounts["bybit-cross-bybit-inverse-btc"]["venue"] == "bybit-inverse"
        assert accounts["binance-empty"]["base_url"] == base_url
        assert {entry["base_url"] for entry in accounts.values()} == {base_url}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "simulator stopped" in stderr


def test_bad_scenario_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[accounts.x]\nexchange = "kraken"\n')
    result = CliRunner().invoke(app, ["simulate", "--scenario", str(path)])
    assert result.exit_code == 2
    assert "accounts.x.exchange" in result.stderr
    assert result.stdout == ""


def test_busy_port_exits_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["simulate", "--port", str(port)])
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.stderr


def test_speed_compresses_time_and_ctrl_c_stops_cleanly() -> None:
    process, output = _start("--port", "0", "--speed", "20")
    try:
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", output)
        assert match, output

        def elapsed() -> float:
            with urllib.request.urlopen(f"{match.group(1)}/_sim/state", timeout=5) as response:
                return float(json.loads(response.read())["elapsed"])

        first = elapsed()
        time.sleep(0.5)
        assert elapsed() - first >= 5  # 0.5 s of real time is at least 10 s of scenario time
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_a_directory_named_like_a_builtin_scenario_does_not_hide_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `portfolio-monitor demo --state-dir demo` creates ./demo before loading the "demo" scenario.
    from monitor.simulator import load_scenario

    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_scenario("demo").name == "demo"
