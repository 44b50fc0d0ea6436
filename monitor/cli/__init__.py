"""Command-line entry point. Each command lives in its own module and registers on `app`."""

from __future__ import annotations

from monitor.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the `portfolio-monitor` command line."""
    # Imported for their side effect of registering commands; the list is the CLI's table of contents.
    import monitor.cli.commands  # noqa: F401

    app()
