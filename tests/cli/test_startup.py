"""Start-up cost: commands import the heavy libraries (ccxt, SQLAlchemy, matplotlib, pydantic, the
sinks' clients) only when they use them, so `--help`, `calc` and `status` start in a fraction of a
second (`status` on SQLite reads with the standard library's sqlite3).
bench/startup.py measures the times; this guards the imports, which is what makes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import monitor

HEAVY = (
    "ccxt",
    "sqlalchemy",
    "alembic",
    "matplotlib",
    "monitor.config",  # pydantic models of the whole configuration
    "aiomqtt",
    "httpx",
    "aiohttp",
    "prometheus_client",
)
EXAMPLE = Path(monitor.__file__).parent / "examples" / "binance_cross_two_longs.json"


def _imported_by(*args: str) -> list[str]:
    """The heavy modules loaded by `portfolio-monitor ARGS` in a fresh interpreter."""
    probe = (
        "import json, sys\n"
        f"sys.argv = ['portfolio-monitor', *{list(args)!r}]\n"
        "from monitor.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "sys.stderr.write('LOADED ' + json.dumps(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(done.stderr.rsplit("LOADED ", 1)[1]))


def test_help_imports_no_heavy_library() -> None:
    assert _imported_by("--help") == []
    # Typer itself builds a command's options with pydantic; our configuration is not loaded.
    assert _imported_by("status", "--help") == []


def test_calc_imports_no_heavy_library() -> None:
    assert _imported_by("calc", str(EXAMPLE), "--format", "json") == []


@pytest.mark.parametrize("output_format", ["table", "json", "csv"])
def test_status_on_sqlite_reads_without_sqlalchemy(db: str, output_format: str) -> None:
    # The standard library's sqlite3 reads the status (monitor/storage/status_read.py).
    assert _imported_by("status", "--database", db, "--format", output_format) == []


def test_status_with_a_configuration_loads_only_the_configuration(db: str) -> None:
    state_dir = Path(db.removeprefix("sqlite:///")).parent
    config = state_dir / "config.toml"
    config.write_text(
        f'state_dir = "{state_dir}"\n\n[accounts.main]\nvenue = "binance-usdm"\n'
        'api_key = "k"\napi_secret = "s"\n'
    )
    assert _imported_by("status", "--config", str(config)) == ["monitor.config"]
