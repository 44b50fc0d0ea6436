"""The shipped unit file passes systemd's own checks: clean `verify` and hardening exposure <= 2.0."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import tool_missing

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "portfolio-monitor.service"
SYSUSERS = ROOT / "systemd" / "portfolio-monitor.sysusers.conf"
INSTALLED_BINARY = "/usr/local/bin/portfolio-monitor"


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's binary, because verify checks it exists."""
    if shutil.which("systemd-analyze") is None:
        tool_missing("systemd-analyze is not installed (apt-get install systemd, or run .ci/run)")
    binary = Path(sys.executable).with_name("portfolio-monitor")
    assert binary.exists(), f"{binary} missing: install the project into the venv"
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_BINARY, str(binary)))
    return copy


def test_verify_is_clean(unit_copy: Path) -> None:
    # verify exits 0 even for unknown keys or unparsable values, so stderr must be empty too.
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_verify_catches_a_typo(unit_copy: Path) -> None:
    unit_copy.write_text(unit_copy.read_text().replace("NoNewPrivileges=", "NoNewPrivilegez="))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "NoNewPrivilegez" in result.stderr


def test_exposure_is_at_most_2_0(unit_copy: Path) -> None:
    # The threshold is on the 0-100 scale behind the printed 0.0-10.0 figure.
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit_copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level" in result.stdout


def test_unit_keeps_the_service_contract() -> None:
    settings = [
        line.strip() for line in UNIT.read_text().splitlines() if "=" in line and line[0] != "#"
    ]
    for required in (
        "Type=notify",
        "RestartPreventExitStatus=78",
        "StateDirectory=portfolio-monitor",
        "ConfigurationDirectory=portfolio-monitor",
        "User=portfolio-monitor",
    ):
        assert required in settings
    assert any(line.startswith("WatchdogSec=") for line in settings)
    assert any(line.startswith("LoadCredential=accounts__") for line in settings)
    # A trailing comment would silently become part of the value.
    assert not [line for line in settings if " #" in line]


def test_sysusers_file_is_accepted() -> None:
    if shutil.which("systemd-sysusers") is None:
        tool_missing("systemd-sysusers is not installed (apt-get install systemd, or run .ci/run)")
    result = subprocess.run(
        ["systemd-sysusers", "--dry-run", str(SYSUSERS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "portfolio-monitor" in result.stderr + result.stdout
