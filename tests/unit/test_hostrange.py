from __future__ import annotations

import pytest

from mcpctl.errors import UsageError
from mcpctl.hostrange import MAX_EXPANSION, HostRangeError, expand_hosts


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ("10.0.0.[2:5]", ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]),
        ("gpu[01:04].lab", ["gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab"]),
        ("n[8:11]", ["n8", "n9", "n10", "n11"]),
        ("n[008:011]", ["n008", "n009", "n010", "n011"]),
        ("n[0:6:2]", ["n0", "n2", "n4", "n6"]),
        ("db-[a:c]", ["db-a", "db-b", "db-c"]),
        ("r[1:2]n[1:2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("plain.host", ["plain.host"]),
        ("fd00::1", ["fd00::1"]),
        ("a[1:2],b, c[3:3]", ["a1", "a2", "b", "c3"]),
        (["x[1:2]", "y"], ["x1", "x2", "y"]),
        (["a", "a"], ["a", "a"]),  # duplicates are the spec check's business, with lines
        ([], []),
    ],
)
def test_expands(patterns, expected):
    assert expand_hosts(patterns) == expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("n[5:1]", "runs backwards"),
        ("n[1:]", "must be [start:end]"),
        ("n[1]", "must be [start:end]"),
        ("n[1:2:3:4]", "must be [start:end]"),
        ("n[1:5:0]", "step '0'"),
        ("n[1:5:x]", "step 'x'"),
        ("n[01:100]", "same width"),
        ("n[a:5]", "two numbers or two letters"),
        ("n[a:C]", "two numbers or two letters"),
        ("n[1:2", "unbalanced"),
        ("n1:2]", "unbalanced"),
        ("n[[1:2]]", "unbalanced"),
        (f"n[1:{MAX_EXPANSION + 1}]", "expands to more than"),
        ("a[1:400]b[1:400]", "expands to 160000 hosts"),
    ],
)
def test_bad_patterns_are_refused(pattern, reason):
    with pytest.raises(HostRangeError) as caught:
        expand_hosts(pattern)
    assert reason in str(caught.value)
    assert pattern in str(caught.value) or "patterns expand" in str(caught.value)


def test_errors_are_usage_errors():
    # So the CLI exits 2 with the message, without a traceback.
    assert issubclass(HostRangeError, UsageError)
