"""Renders rows for people (rich tables) and programs (JSON, CSV). Data to stdout, never logs."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table


class Format(StrEnum):
    """Output formats a command can print."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def default_format() -> Format:
    """Tables for a person at a terminal, JSON when piped into another program."""
    return Format.TABLE if sys.stdout.isatty() else Format.JSON


def to_jsonable(value: Any) -> Any:
    """Datetimes as ISO-8601 strings, enums as their values, everything else unchanged."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n")


def print_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print rows as CSV with a header line."""
    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: to_jsonable(v) for k, v in row.items()})


def print_table(
    rows: Sequence[Sequence[str]], headers: Sequence[str], *, title: str | None = None
) -> None:
    """Print already-formatted cells as a rich table."""
    table = Table(title=title)
    for header in headers:
        # Cells wrap onto a second line in a narrow terminal rather than lose characters to "…":
        # a cut-off price reads as another price, "BTCUS…" as BTCUSDT or BTCUSDC.
        table.add_column(
            header, justify="left" if header == headers[0] else "right", overflow="fold"
        )
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=True).print(table)


def err(message: str) -> None:
    """Print a message for the person on stderr (never stdout, which carries data)."""
    sys.stderr.write(message.rstrip("\n") + "\n")
