"""`[notify.console]`: alerts written to the log (the demo's sink); the section has no keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConsoleSettings(BaseModel):
    """The log sink is on when the section exists."""

    model_config = ConfigDict(extra="forbid", frozen=True)
