"""The install path a user takes: a wheel built from the checkout and installed into a clean
virtual environment works on its own (entry point, packaged examples, migrations, simulator).

Fast and honest about what it checks: the wheel is built with `pip wheel --no-deps` and installed
with `--no-deps` into a new venv; the dependencies are the project's pinned ones (constraints.txt,
already installed in the running venv), made visible to the new venv through a .pth file, not
resolved again from the package index. The project's own code comes only from the wheel: the
running venv's editable install is a .pth file inside that directory, which Python does not read
for a directory named in another .pth, and the commands run outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _run(*args: str | Path, cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        # Nothing from the test run's environment points back at the checkout.
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.e2e
def test_wheel_installs_into_a_clean_venv_and_runs(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT, cwd=tmp_path)
    (wheel,) = wheels.glob("portfolio_monitor-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path)
        .strip()
        .splitlines()[-1]
    )
    (site / "project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        wheel,
        cwd=tmp_path,
    )

    program = venv / "bin" / "portfolio-monitor"
    origin = _run(python, "-c", "import monitor; print(monitor.__file__)", cwd=tmp_path)
    assert origin.strip().startswith(str(site)), origin
    assert _run(program, "--version", cwd=tmp_path).startswith("portfolio-monitor 0.1.0")
    example = site / "monitor" / "examples" / "binance_cross_two_longs.json"
    assert '"margin_ratio"' in _run(program, "calc", example, "--format", "json", cwd=tmp_path)
    demo = _run(
        program,
        "demo",
        "--duration",
        "20",
        "--no-live",
        "--state-dir",
        tmp_path / "demo",
        cwd=tmp_path,
        timeout=90,
    )
    assert "Demo finished:" in demo
    assert (tmp_path / "demo" / "monitor.db").is_file()
