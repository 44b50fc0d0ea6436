"""Imports every command module so that it registers itself on the Typer app."""

from monitor.cli import (
    alerts,  # noqa: F401
    calc,  # noqa: F401
    config_cmd,  # noqa: F401
    history,  # noqa: F401
    notify_cmd,  # noqa: F401
    run,  # noqa: F401
    show,  # noqa: F401
    simulate,  # noqa: F401
)
