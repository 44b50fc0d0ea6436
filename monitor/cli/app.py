"""The Typer application every command module registers on."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperOption

import monitor

app = typer.Typer(
    name="portfolio-monitor",
    help="Watch futures accounts, recompute margin and liquidation prices, alert before liquidation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Exit statuses shared by every command (B.7): 2 = bad usage or input, 78 = bad configuration (EX_CONFIG).
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78

_typed = TyperOption.display_type_rich


def _flag_without_type(self: TyperOption, ctx: Any) -> str | None:
    # Typer 0.29 labels an on/off flag `<bool>` in --help, which reads as if it took a value
    # (`--connect true`); a flag has no value to describe.
    return None if self.is_flag and self.metavar is None else _typed(self, ctx)


TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"portfolio-monitor {monitor.__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    # Options of the program itself; every command is registered separately.
    del version
