"""Renders rows for people (rich tables) and programs (JSON, CSV). Data to stdout, never logs."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from monitor.domain.units import format_amount, format_percent, format_price


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


# A rich table with a box border and one space of padding either side of each cell costs three
# characters per column plus one.
_BORDER_PER_COLUMN = 3


def _narrowest(cell: str | Text) -> int:
    """The narrowest a cell can be without breaking a word (or a number) in two."""
    text = cell.plain if isinstance(cell, Text) else cell
    # "339.0 %" stays on one line: a percentage is read with its sign.
    return max((len(word) for word in text.replace(" %", "_%").split()), default=0)


def _longest(cell: str | Text) -> int:
    text = cell.plain if isinstance(cell, Text) else cell
    return max((len(line) for line in text.splitlines()), default=0)


def fit_table(
    rows: Sequence[Sequence[str | Text]],
    headers: Sequence[str],
    *,
    width: int,
    title: str | None = None,
    optional: Sequence[str] = (),
    text_columns: Sequence[str] = (),
) -> RenderableType:
    """A rich table of already-formatted cells that fits `width` columns of terminal.

    Cells wrap only between words, never inside one, so a number is never cut (`59,999.` over
    `2`) and a rule name never split mid-word. When even the narrowest layout is too wide, whole
    columns named in `optional` are left out (least useful first) and the caption names them;
    when even that is too wide, each row becomes a block of `header: value` lines.
    """
    kept = list(range(len(headers)))
    narrowest = [
        max([_narrowest(headers[i])] + [_narrowest(row[i]) for row in rows])
        for i in range(len(headers))
    ]

    def needed() -> int:
        return sum(narrowest[i] + _BORDER_PER_COLUMN for i in kept) + 1

    droppable = [headers.index(h) for h in optional if h in headers]
    dropped: list[str] = []
    for index in droppable:
        if needed() <= width:
            break
        kept.remove(index)
        dropped.append(headers[index])
    if needed() > width:
        # Even without the optional columns a row does not fit: one block per row instead,
        # every column a line of its own, nothing left out.
        return _blocks(rows, headers, title)
    caption = None
    if dropped:
        caption = (
            f"not shown at {width} columns: {', '.join(dropped)} (wider terminal or --format json)"
        )
    # Each column as wide as its longest line; while too wide, the widest column that can still
    # wrap between words gives up a character. Rich is given the exact widths: its own fitting
    # would fold a number when it shrinks every column alike.
    widths = {i: max([_longest(headers[i])] + [_longest(row[i]) for row in rows]) for i in kept}
    room = width - _BORDER_PER_COLUMN * len(kept) - 1
    while sum(widths.values()) > room:
        shrinkable = [i for i in kept if widths[i] > narrowest[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i] - narrowest[i])
        widths[widest] -= 1
    table = Table(title=title, caption=caption)
    for i in kept:
        header = headers[i]
        left = i == 0 or header in text_columns
        table.add_column(
            header, justify="left" if left else "right", width=widths[i], overflow="fold"
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


def _blocks(
    rows: Sequence[Sequence[str | Text]], headers: Sequence[str], title: str | None
) -> RenderableType:
    parts: list[RenderableType] = [Text(title, style="italic")] if title else []
    for row in rows:
        block = Table(show_header=False, box=box.SIMPLE_HEAD, title=row[0], title_justify="left")
        block.add_column("field", style="bold")
        block.add_column("value", overflow="fold")
        for header, cell in zip(headers[1:], row[1:], strict=True):
            block.add_row(header, cell)
        parts.append(block)
    return Group(*parts)


def terminal_width() -> int:
    """The terminal's width in columns ($COLUMNS when set; 80 when not a terminal)."""
    return Console().width


def print_table(
    rows: Sequence[Sequence[str | Text]],
    headers: Sequence[str],
    *,
    title: str | None = None,
    optional: Sequence[str] = (),
    text_columns: Sequence[str] = (),
) -> None:
    """Print already-formatted cells as a rich table that fits the terminal (see fit_table)."""
    console = Console()
    console.print(
        fit_table(
            rows,
            headers,
            width=console.width,
            title=title,
            optional=optional,
            text_columns=text_columns,
        )
    )


def percent_cell(value: float | None) -> str:
    """A fraction as a table cell in percent ("-" when unknown)."""
    return "-" if value is None else format_percent(value)


def number_cell(value: float | None) -> str:
    """An amount as a table cell ("-" when unknown): cents from 1,000 up, a coin's digits below."""
    return "-" if value is None else format_amount(value)


def price_cell(value: float | None) -> str:
    """A price as a table cell ("-" when unknown)."""
    return "-" if value is None else format_price(value)


def err(message: str) -> None:
    """Print a message for the person on stderr (never stdout, which carries data)."""
    sys.stderr.write(message.rstrip("\n") + "\n")
