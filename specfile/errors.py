"""Spec problems that point at a file, a line and a field, and say how to fix them."""

from __future__ import annotations

import re
from dataclasses import dataclass

FieldPath = tuple[str | int, ...]

# Problems past this many are summarised; a file that broken needs fixing from the top anyway.
MAX_LISTED_PROBLEMS = 20

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def format_path(path: FieldPath) -> str:
    """`("nodes", 2, "address")` -> `nodes[2].address`; odd keys are quoted: `labels["a b"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


@dataclass(frozen=True)
class SpecProblem:
    """One fault: what is wrong (`message`), where (`path`, `line`), and what to do (`fix`).

    When another field takes part, its line goes between `message` and `after`:
    "duplicate address 10.0.0.2 (node 'a'" + " on line 9" + " has it)".
    """

    message: str
    fix: str = ""
    path: FieldPath = ()
    line: int | None = None
    related_line: int | None = None
    after: str = ""

    def render(self, source: str | None, *, with_lines: bool = True) -> str:
        if source and self.line and with_lines:
            where = f"{source}:{self.line}: "
        elif source:
            where = f"{source}: "
        else:
            where = ""
        field = f"{format_path(self.path)}: " if self.path else ""
        related = f" on line {self.related_line}" if self.related_line and with_lines else ""
        fix = f" — {self.fix}" if self.fix else ""
        return f"{where}{field}{self.message}{related}{self.after}{fix}"


class SpecError(ValueError):
    """A spec that cannot be used. `problems` are sorted by line; str() lists them all.

    Bad input: a command that meets one changes nothing and exits with `exit_code`.
    """

    exit_code = 2

    def __init__(self, source: str | None, problems: list[SpecProblem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda problem: problem.line or 0)
        super().__init__(self._describe())

    def _describe(self) -> str:
        shown = [problem.render(self.source) for problem in self.problems[:MAX_LISTED_PROBLEMS]]
        hidden = len(self.problems) - len(shown)
        if hidden > 0:
            shown.append(f"... and {hidden} more problems")
        return "\n".join(shown)


class SpecFault(ValueError):
    """A failed check. `path` is relative to the model that raised it. When another field
    takes part (`related`), its location (" on line N") goes between `message` and `after`:
    "duplicate address 10.0.0.2 (node 'a'" + " on line 9" + " has it)"."""

    def __init__(
        self,
        message: str,
        fix: str,
        path: FieldPath = (),
        related: FieldPath | None = None,
        after: str = "",
    ) -> None:
        self.message = message
        self.fix = fix
        self.path = path
        self.related = related
        self.after = after
        super().__init__(f"{self.located('')} — {fix}")

    def located(self, where: str) -> str:
        return f"{self.message}{where}{self.after}"


class SpecFaults(ValueError):
    """Several faults found by one cross-field check, reported together."""

    def __init__(self, faults: list[SpecFault]) -> None:
        self.faults = faults
        super().__init__("; ".join(str(fault) for fault in faults))
