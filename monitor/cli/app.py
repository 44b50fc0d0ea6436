"""The Typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="portfolio-monitor",
    help="Watch futures accounts, recompute margin and liquidation prices, alert before liquidation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Exit statuses shared by every command (B.7): 2 = bad usage or input, 78 = bad configuration (EX_CONFIG).
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78
