"""Where run progress goes: a rich Live block redrawn in place on a terminal, plain lines
elsewhere (CI logs, pipes), with no escape codes there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

from mcpctl.progress import COUNT_COLUMNS, LiveView, Notice, count_cells
from mcpctl.tables import Cell, Column, build_table, console_for, is_terminal

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

_NOTICE_STYLES = {"problem": "bold red", "report": "", "heading": "bold", "result": "dim"}
_STATUS_STYLES = {"FAILED": "bold red", "UNREACHABLE": "bold red", "running": "yellow"}
LIVE_COLUMNS = (Column("HOST"), *COUNT_COLUMNS, Column(""))


class ProgressDisplay(Protocol):
    live: bool

    def show(self, notices: Sequence[Notice]) -> None: ...

    def redraw(self, view: LiveView) -> None: ...

    def close(self) -> None: ...

    def height(self) -> int: ...


class LineDisplay:
    """Not a terminal: every notice becomes a line, and there is no block to redraw."""

    live = False

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def show(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            self._stream.write(f"{notice.text}\n")
        self._stream.flush()

    def redraw(self, view: LiveView) -> None:
        pass

    def close(self) -> None:
        self._stream.flush()

    def height(self) -> int:
        return 10_000


class LiveDisplay:
    """Keeps the live view at the bottom of the terminal (rich Live) and redraws it in place;
    notices scroll above it. Only reports and problems are kept as lines unless `verbose`,
    since the view already shows the current play, task and per-host counts."""

    live = True

    def __init__(self, console: Console, verbose: bool) -> None:
        from rich.live import Live

        self._console = console
        self._verbose = verbose
        # transient: on close the view goes; the summary table takes its place. Nothing else
        # writes while it runs, and with -o json stdout must stay the JSON's alone.
        self._live = Live(
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def show(self, notices: Sequence[Notice]) -> None:
        from rich.text import Text

        for notice in notices:
            if self._verbose or notice.kind in ("report", "problem"):
                self._console.print(Text(notice.text, style=_NOTICE_STYLES[notice.kind]))

    def redraw(self, view: LiveView) -> None:
        self._live.update(live_renderable(view), refresh=True)

    def close(self) -> None:
        self._live.stop()

    def height(self) -> int:
        return self._console.size.height


def live_renderable(view: LiveView) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    rows = [
        [
            host.host,
            *count_cells(host.tally),
            Cell(host.status, _STATUS_STYLES.get(host.status, "")),
        ]
        for host in view.hosts
    ]
    parts: list[RenderableType] = [
        Text(view.heading, style="bold", no_wrap=True, overflow="ellipsis"),
        build_table(LIVE_COLUMNS, rows, terminal=True),
    ]
    if view.more:
        parts.append(Text(view.more, no_wrap=True, overflow="ellipsis"))
    return Group(*parts)


def display_for(stream: TextIO, verbose: bool) -> ProgressDisplay:
    """A redrawing display on a terminal, plain lines when piped or on a dumb terminal."""
    if is_terminal(stream):
        return LiveDisplay(console_for(stream), verbose)
    return LineDisplay(stream)
