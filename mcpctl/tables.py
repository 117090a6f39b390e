"""The one table renderer of mcpctl, on rich: a table with a bold header and colours on a
terminal, and plain aligned text with no escape codes anywhere else (pipes, files, CI logs):
columns two spaces apart, numbers right-aligned, never wrapped. rich is imported only when a
table is printed, so `mcpctl --help` stays fast."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Wide enough that no plain line is ever wrapped (rich assumes 80 columns off a terminal).
PLAIN_WIDTH = 10_000


@dataclass(frozen=True)
class Column:
    title: str
    numeric: bool = False  # right-aligned


@dataclass(frozen=True)
class Cell:
    """A value with a rich style ("red", "bold yellow"), used on a terminal only."""

    text: str
    style: str = ""


CellValue = str | Cell


def is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM", "dumb") != "dumb"


def console_for(stream: TextIO | None = None) -> Console:
    """A rich console on `stream`: colours and redrawing on a terminal, plain text elsewhere."""
    from rich.console import Console

    out = stream or sys.stdout
    terminal = is_terminal(out)
    return Console(
        file=out,
        force_terminal=terminal,
        no_color=None if terminal else True,  # None: rich honours $NO_COLOR
        color_system="auto" if terminal else None,
        width=None if terminal else PLAIN_WIDTH,
        highlight=False,
        emoji=False,
        markup=False,
    )


def build_table(
    columns: Sequence[Column], rows: Sequence[Sequence[CellValue]], terminal: bool
) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1) if terminal else (0, 2, 0, 0),
        header_style="bold" if terminal else "",
    )
    for column in columns:
        table.add_column(column.title, justify="right" if column.numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(
            *(Text(value.text, style=value.style) if isinstance(value, Cell) else Text(value)
              for value in row)
        )  # fmt: skip
    return table


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[CellValue]],
    stream: TextIO | None = None,
) -> None:
    console = console_for(stream)
    table = build_table(columns, rows, console.is_terminal)
    if console.is_terminal:
        console.print(table)
        return
    # rich pads every cell to its column's width; a plain line ends at its last character.
    with console.capture() as captured:
        console.print(table)
    console.file.write("".join(f"{line.rstrip()}\n" for line in captured.get().splitlines()))
    console.file.flush()
