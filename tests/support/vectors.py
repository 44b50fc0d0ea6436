"""The published account states with expected results, read at run time from tests/vectors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.domain.margin import assess
from monitor.domain.model import AccountState, Snapshot

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"
SIGMAS_VECTOR = VECTOR_DIR / "volatility" / "binance_usdm_cross_two_longs_in_sigmas.json"


def vector_files() -> list[Path]:
    """Every vector file; a new file becomes a new test case without touching test code."""
    files = sorted(VECTOR_DIR.glob("*.json"))
    assert files, f"no vectors in {VECTOR_DIR}"
    return files


def load(path: Path) -> dict[str, Any]:
    """One vector: name, source, tolerance, state, expected."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def two_longs_in_sigmas(volatility: dict[str, Any] | None = None) -> dict[str, Any]:
    """The state document of the Binance FAQ two longs with their symbols' sigmas (account move
    -7.69 %); `volatility` replaces the vector's sigmas when given (`{}` for none)."""
    state: dict[str, Any] = load(SIGMAS_VECTOR)["state"]
    return state if volatility is None else {**state, "volatility": volatility}


def snapshot_of(state: AccountState, taken_at: datetime, account: str = "main") -> Snapshot:
    """`state` assessed and taken at `taken_at`, as a poll cycle produces it."""
    return Snapshot(account, taken_at, state, assess(state))
