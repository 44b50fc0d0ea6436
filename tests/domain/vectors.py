"""The published account states with expected results, read at run time from tests/vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"


def vector_files() -> list[Path]:
    """Every vector file; a new file becomes a new test case without touching test code."""
    files = sorted(VECTOR_DIR.glob("*.json"))
    assert files, f"no vectors in {VECTOR_DIR}"
    return files


def load(path: Path) -> dict[str, Any]:
    """One vector: name, source, tolerance, state, expected."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
