"""The ready-made configurations in examples/ are valid as shipped: `check-config` accepts each,
with every sink it names configured, and masks the secrets they hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))
runner = CliRunner()


def test_the_three_documented_examples_exist() -> None:
    assert [p.name for p in EXAMPLES] == [
        "binance-telegram.toml",
        "bybit-unified-ntfy-homeassistant.toml",
        "many-accounts-postgresql.toml",
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_passes_check_config(example: Path) -> None:
    result = runner.invoke(app, ["check-config", "--config", str(example)])
    assert result.exit_code == 0, result.stderr
    assert "WARNING" not in result.stderr
    shown = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert shown["accounts"]
    assert "put-the-secret-here-or-in-a-credential" not in result.stdout
