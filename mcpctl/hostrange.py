"""Expand Ansible-style host ranges: `10.0.0.[2:9]`, `gpu[01:04].lab`, `db-[a:c]`.

A pattern may hold several ranges (their product is taken) and a range may have a step:
`[0:10:2]`. Numeric ranges whose start has a leading zero keep that width, as in Ansible.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from mcpctl.errors import UsageError

# Far more hosts than any cluster has; stops a typo like [1:1000000] from eating memory.
MAX_EXPANSION = 100_000

_RANGE = re.compile(r"\[([^\[\]]*)\]")
_PATTERN_SEPARATORS = re.compile(r"[,\s]+")


class HostRangeError(UsageError, ValueError):
    """A host pattern that cannot be expanded; the message says which part and why."""


def expand_hosts(patterns: str | Iterable[str]) -> list[str]:
    """Expand one or more patterns, in order, into host names or addresses.

    A string may hold several patterns separated by commas or whitespace. Duplicates are kept
    (the caller decides whether they are an error, and can then name both).
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    hosts: list[str] = []
    for text in patterns:
        for pattern in _PATTERN_SEPARATORS.split(text.strip()):
            if pattern:
                hosts.extend(expand_pattern(pattern))
                if len(hosts) > MAX_EXPANSION:
                    raise HostRangeError(
                        f"host patterns expand to more than {MAX_EXPANSION} hosts — "
                        "check the range bounds"
                    )
    return hosts


def expand_pattern(pattern: str) -> list[str]:
    """Expand a single pattern such as `gpu[01:04].lab` (no separators)."""
    pieces: list[list[str]] = []
    position = 0
    for match in _RANGE.finditer(pattern):
        pieces.append([_literal(pattern[position : match.start()], pattern)])
        pieces.append(_expand_range(match.group(1), pattern))
        position = match.end()
    pieces.append([_literal(pattern[position:], pattern)])
    total = 1
    for choices in pieces:
        total *= len(choices)
    if total > MAX_EXPANSION:
        raise HostRangeError(
            f"host pattern {pattern!r} expands to {total} hosts (limit {MAX_EXPANSION}) — "
            "check the range bounds"
        )
    return ["".join(parts) for parts in itertools.product(*pieces)]


def _literal(text: str, pattern: str) -> str:
    # Brackets left over after taking out the well-formed ranges are unbalanced or nested.
    if "[" in text or "]" in text:
        raise HostRangeError(
            f"host pattern {pattern!r} has an unbalanced '[' or ']' — "
            "write ranges as [start:end] or [start:end:step]"
        )
    return text


def _expand_range(body: str, pattern: str) -> list[str]:
    fields = body.split(":")
    if len(fields) not in (2, 3) or not fields[0] or not fields[1]:
        raise HostRangeError(
            f"host pattern {pattern!r}: range [{body}] must be [start:end] or "
            "[start:end:step], e.g. [1:8] or [01:16:2]"
        )
    start, end = fields[0], fields[1]
    step = _parse_step(fields[2] if len(fields) == 3 else "1", body, pattern)
    if start.isdigit() and end.isdigit():
        return _numeric_range(start, end, step, body, pattern)
    if _is_letter(start) and _is_letter(end) and start.islower() == end.islower():
        return _letter_range(start, end, step, body, pattern)
    raise HostRangeError(
        f"host pattern {pattern!r}: range [{body}] must run between two numbers "
        "or two letters of the same case, e.g. [1:8] or [a:f]"
    )


def _parse_step(text: str, body: str, pattern: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise HostRangeError(
            f"host pattern {pattern!r}: range [{body}] has step {text!r} — "
            "the step must be a positive whole number"
        )
    return int(text)


def _numeric_range(start: str, end: str, step: int, body: str, pattern: str) -> list[str]:
    first, last = int(start), int(end)
    if first > last:
        raise HostRangeError(
            f"host pattern {pattern!r}: range [{body}] runs backwards — write it as [{end}:{start}]"
        )
    width = 0
    if start.startswith("0") and len(start) > 1:
        if len(start) != len(end):
            raise HostRangeError(
                f"host pattern {pattern!r}: zero-padded range [{body}] needs a start and end "
                f"of the same width, e.g. [{start}:{end.zfill(len(start))}]"
            )
        width = len(start)
    _check_size(last - first, step, pattern)
    return [str(number).zfill(width) for number in range(first, last + 1, step)]


def _letter_range(start: str, end: str, step: int, body: str, pattern: str) -> list[str]:
    if start > end:
        raise HostRangeError(
            f"host pattern {pattern!r}: range [{body}] runs backwards — write it as [{end}:{start}]"
        )
    return [chr(code) for code in range(ord(start), ord(end) + 1, step)]


def _check_size(span: int, step: int, pattern: str) -> None:
    if span // step + 1 > MAX_EXPANSION:
        raise HostRangeError(
            f"host pattern {pattern!r} expands to more than {MAX_EXPANSION} hosts — "
            "check the range bounds"
        )


def _is_letter(text: str) -> bool:
    return len(text) == 1 and text.isascii() and text.isalpha()
