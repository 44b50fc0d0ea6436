"""What a test does when a system tool it needs (mosquitto, PostgreSQL, openssl, systemd-analyze) is absent.

On a developer's machine it skips with the reason printed; under CI (CI=true, set by .ci/run, which installs
every tool) a missing tool is an installation bug, so the test fails instead of passing as skipped.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True under CI (CI=true)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def tool_missing(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere, naming what is missing and how to get it."""
    if in_ci():
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
