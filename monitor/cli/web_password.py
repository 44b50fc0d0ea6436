"""`portfolio-monitor web-password`: the salted hash of a dashboard password, for the
configuration."""

from __future__ import annotations

import sys

import typer

from monitor.cli.app import app
from monitor.cli.options import usage_error


@app.command("web-password")
def web_password() -> None:
    """Ask for a dashboard password (twice) and print its salted hash for `[web] password_hash`."""
    from monitor.web.auth import hash_password

    password = typer.prompt("Dashboard password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise usage_error("the password must have at least 8 characters")
    sys.stdout.write(f'password_hash = "{hash_password(password)}"\n')
