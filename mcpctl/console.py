"""Where run progress goes: a block redrawn in place on a terminal, plain lines elsewhere (CI)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import Protocol, TextIO

from mcpctl.progress import Notice

# Cursor to the start of the line N lines up; erase from the cursor to the end of the screen.
_CURSOR_UP = "\x1b[{}F"
_ERASE_BELOW = "\x1b[J"


class ProgressDisplay(Protocol):
    live: bool

    def show(self, notices: Sequence[Notice]) -> None: ...

    def redraw(self, block: Sequence[str]) -> None: ...

    def close(self) -> None: ...

    def size(self) -> tuple[int, int]: ...


class LineDisplay:
    """Not a terminal: every notice becomes a line, and there is no block to redraw."""

    live = False

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def show(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            self._stream.write(f"{notice.text}\n")
        self._stream.flush()

    def redraw(self, block: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        self._stream.flush()

    def size(self) -> tuple[int, int]:
        return (10_000, 10_000)


class TerminalDisplay:
    """Keeps a block of lines at the bottom of the terminal and redraws it in place; notices
    scroll above it. Only reports and problems are kept as lines unless `verbose`, since the
    block already shows the current play, task and per-host counts."""

    live = True

    def __init__(self, stream: TextIO, verbose: bool) -> None:
        self._stream = stream
        self._verbose = verbose
        self._block: list[str] = []
        self._pending: list[str] = []

    def show(self, notices: Sequence[Notice]) -> None:
        self._pending.extend(
            notice.text
            for notice in notices
            if self._verbose or notice.kind in ("report", "problem")
        )

    def redraw(self, block: Sequence[str]) -> None:
        if not self._pending and list(block) == self._block:
            return
        self._erase_block()
        for line in [*self._pending, *block]:
            self._stream.write(f"{line}\n")
        self._pending = []
        self._block = list(block)
        self._stream.flush()

    def close(self) -> None:
        """Remove the block (the summary replaces it) but keep every notice."""
        self._erase_block()
        for line in self._pending:
            self._stream.write(f"{line}\n")
        self._pending = []
        self._block = []
        self._stream.flush()

    def size(self) -> tuple[int, int]:
        columns, lines = shutil.get_terminal_size()
        return columns, lines

    def _erase_block(self) -> None:
        if self._block:
            self._stream.write(_CURSOR_UP.format(len(self._block)) + _ERASE_BELOW)


def display_for(stream: TextIO, verbose: bool) -> ProgressDisplay:
    """A redrawing display on a terminal, plain lines when piped or on a dumb terminal."""
    if stream.isatty() and os.environ.get("TERM", "dumb") != "dumb":
        return TerminalDisplay(stream, verbose)
    return LineDisplay(stream)
