"""What every command shares, as a person at a shell sees it: --version, completion, --help."""

from __future__ import annotations

import os
import subprocess

from typer.testing import CliRunner

import monitor
from monitor.cli import app
from tests.support.daemon import BINARY

runner = CliRunner()


def test_version_prints_the_installed_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"portfolio-monitor {monitor.__version__}\n"


def test_flags_are_not_shown_as_taking_a_value() -> None:
    # `--connect <bool>` reads as if it wanted `--connect true`.
    for command in ([], ["check-config"], ["demo"], ["history"], ["alerts"]):
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, command
        assert "<bool>" not in result.stdout, command
    shown = runner.invoke(app, ["check-config", "--help"], env={"COLUMNS": "120"}).stdout
    assert "--connect" in shown
    assert "<file>" in shown  # options that take a value still say what kind


def test_shell_completion_completes_commands_and_options() -> None:
    # Bash asks the program itself, through these variables (what --install-completion sets up).
    def complete(*words: str) -> list[str]:
        result = subprocess.run(
            [str(BINARY)],
            env={
                **os.environ,
                "_PORTFOLIO_MONITOR_COMPLETE": "complete_bash",
                "COMP_WORDS": " ".join(["portfolio-monitor", *words]),
                "COMP_CWORD": str(len(words)),
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.split()

    assert complete("check-c") == ["check-config"]
    assert "--format" in complete("status", "--fo")
    # How a user sets it up: the top-level help offers to install it for their shell.
    shown = runner.invoke(app, ["--help"], env={"COLUMNS": "120"}).stdout
    assert "--install-completion" in shown
