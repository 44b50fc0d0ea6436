"""Imports every command module so that it registers itself on the Typer app.

The order is the order `--help` lists the commands in.
"""

# isort: off
from monitor.cli import alerts  # noqa: F401
from monitor.cli import silence  # noqa: F401
from monitor.cli import calc  # noqa: F401
from monitor.cli import check_config  # noqa: F401
from monitor.cli import web_password  # noqa: F401
from monitor.cli import history  # noqa: F401
from monitor.cli import status  # noqa: F401
from monitor.cli import plot  # noqa: F401
from monitor.cli import backup  # noqa: F401
from monitor.cli import migrate  # noqa: F401
from monitor.cli import prune  # noqa: F401
from monitor.cli import test_notify  # noqa: F401
from monitor.cli import run  # noqa: F401
from monitor.cli import demo  # noqa: F401
from monitor.cli import show  # noqa: F401
from monitor.cli import simulate  # noqa: F401
# isort: on
