"""`calc` with volatilities in its input: the sigma figures offline, as the daemon computes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from tests.support.vectors import SIGMAS_VECTOR, load, two_longs_in_sigmas


def _calc(tmp_path: Path, state: Any, *args: str) -> Any:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    return CliRunner().invoke(app, ["calc", *args, str(path)])


def test_json_output_carries_the_sigma_figures(tmp_path: Path) -> None:
    result = _calc(tmp_path, two_longs_in_sigmas(), "--format", "json")
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    expected = load(SIGMAS_VECTOR)["expected"]
    assert output["volatility"]["daily_sigma"] == pytest.approx(expected["daily_sigma"], rel=1e-4)
    assert output["volatility"]["account_move_sigmas"]["daily"] == pytest.approx(2.2337, rel=1e-4)
    assert output["positions"][1]["distance_sigmas"]["daily"] == pytest.approx(3.6618, rel=1e-4)


def test_table_output_has_the_sigma_table(tmp_path: Path) -> None:
    result = _calc(tmp_path, two_longs_in_sigmas(), "--format", "table")
    assert result.exit_code == 0, result.output
    assert "in sigmas of recent moves" in result.stdout
    assert "2.2 \u03c3" in result.stdout
    assert "19.5 \u03c3" in result.stdout


def test_a_shock_is_judged_against_the_same_volatility(tmp_path: Path) -> None:
    calm = json.loads(_calc(tmp_path, two_longs_in_sigmas(), "--format", "json").stdout)
    shocked = json.loads(
        _calc(tmp_path, two_longs_in_sigmas(), "--format", "json", "--shock", "all=-5%").stdout
    )
    assert (
        shocked["volatility"]["account_move_sigmas"]["daily"]
        < calm["volatility"]["account_move_sigmas"]["daily"]
    )


def test_without_volatility_the_output_keeps_its_shape(tmp_path: Path) -> None:
    state = two_longs_in_sigmas()
    del state["volatility"]
    output = json.loads(_calc(tmp_path, state, "--format", "json").stdout)
    assert "volatility" not in output
    assert "distance_sigmas" not in output["positions"][0]


def test_a_bad_sigma_names_its_field(tmp_path: Path) -> None:
    state = two_longs_in_sigmas()
    state["volatility"]["ETHUSDT"]["daily"] = "-0.1"
    result = _calc(tmp_path, state, "--format", "json")
    assert result.exit_code != 0
    assert "volatility.ETHUSDT.daily: must be >= 0" in result.output
