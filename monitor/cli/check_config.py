"""`portfolio-monitor check-config`: validate the configuration, print it with secrets masked and,
with --connect, log in to every account and report what the venue says about it."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.app import EXIT_FAILURE, app
from monitor.cli.options import ConfigOption, load_or_exit
from monitor.domain.units import format_duration
from monitor.exchanges.probe import BudgetLine, budget_address, request_budget

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.exchanges import ProbeReport


@app.command("check-config")
def check_config(
    config: ConfigOption = None,
    connect: Annotated[
        bool,
        typer.Option(
            "--connect",
            help="Also log in to every account: reachability, key permissions, position and margin modes.",
        ),
    ] = False,
) -> None:
    """Validate the configuration and print it with secrets masked (exit 78 on errors, 1 when
    the polls of a venue and address exceed its per-IP request limit)."""
    import asyncio

    settings = load_or_exit(config)
    sys.stdout.write(json.dumps(settings.masked_dump(), indent=2) + "\n")
    if (no_sink := settings.notify.only_the_log_warning()) is not None:
        sys.stderr.write(f"WARNING: {no_sink}\n")
    polls = [(a.venue, a.poll_interval) for a in settings.accounts.values()]
    addresses = [budget_address(a.base_url, a.testnet) for a in settings.accounts.values()]
    # Judged without streams: when the websockets fail, every account falls back to its poll.
    over = _print_budget(request_budget(polls, addresses=addresses), "request budget")
    if settings.streams.enabled:
        _print_streaming_budget(settings, addresses)
    if not connect:
        if over:
            raise typer.Exit(EXIT_FAILURE)
        return
    reports = asyncio.run(_probe_all(settings))
    for report in reports:
        sys.stdout.write(_describe(report))
    # A Multi-Assets or Portfolio Margin account costs more per poll than a single-asset one.
    models = [report.account_model for report in reports]
    over |= _print_budget(
        request_budget(polls, models, addresses), "request budget with the detected margin models"
    )
    if over or any(report.error for report in reports):
        raise typer.Exit(EXIT_FAILURE)


def _print_budget(budget: list[BudgetLine], label: str) -> bool:
    """Print the budget; True when a venue and address is over its limit (said on stderr: the
    venue answers such a load with 429s, then bans the address)."""
    over = False
    for line in budget:
        sys.stdout.write(f"{label}: {line.describe()}\n")
        if line.share > 1:
            over = True
            sys.stderr.write(f"error: {line.remedy()}\n")
        elif line.share > 0.5:
            sys.stdout.write(
                "  warning: over half of the venue's per-IP limit; lengthen poll_interval\n"
            )
    return over


def _print_streaming_budget(settings: Settings, addresses: list[str]) -> None:
    """The REST load while every account's marks stream: each is only reconciled (never more
    often than its own poll). Information only: the exit status goes by the fallback load."""
    reconcile = settings.streams.reconcile_interval
    polls = [(a.venue, max(a.poll_interval, reconcile)) for a in settings.accounts.values()]
    for line in request_budget(polls, addresses=addresses):
        sys.stdout.write(
            f"request budget while marks stream (REST every {format_duration(reconcile)}): "
            f"{line.describe()}\n"
        )


async def _probe_all(settings: Settings) -> list[ProbeReport]:
    import asyncio

    # ccxt takes seconds to import; only commands that talk to an exchange pay for it.
    from monitor.exchanges import ExchangeHub

    async with ExchangeHub() as hub:
        clients = [hub.client_for(name, account) for name, account in settings.accounts.items()]
        return list(await asyncio.gather(*(client.probe() for client in clients)))


def _describe(report: ProbeReport) -> str:
    def known(value: bool | None) -> str:
        return "unknown" if value is None else ("yes" if value else "no")

    lines = [f"account {report.account} ({report.venue.value}):"]
    if report.error:
        state = "reachable, but" if report.reachable else "NOT reachable:"
        lines.append(f"  {state} {report.error}")
    else:
        lines += [
            "  reachable: yes, API key accepted",
            f"  key can trade: {known(report.can_trade)}; can withdraw: {known(report.can_withdraw)}",
            f"  permissions: {', '.join(report.permissions) or 'not exposed'}",
            f"  margin model: {report.account_model or 'unknown'}",
            f"  position mode: {report.position_mode or 'unknown (no open positions)'}",
            f"  margin modes: {', '.join(report.margin_modes) or 'unknown (no open positions)'}",
        ]
    lines += [f"  warning: {warning}" for warning in report.warnings]
    return "\n".join(lines) + "\n"
