"""Load one YAML document into plain data plus a map from each field path to its line.

PyYAML's loaders drop line numbers and let a duplicate mapping key silently win, so the
document is composed into nodes (in C when libyaml is there) and turned into data here.
Mapping keys are kept as written ("on", "yes" stay strings: YAML 1.1 would make them booleans).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml
from yaml.constructor import SafeConstructor

from specfile.errors import FieldPath, SpecError, SpecProblem

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"

# Aliases can make a small file expand enormously ("billion laughs"); a real spec is far below.
MAX_VALUES = 500_000  # a 5,000-node spec has about 40,000
MAX_DEPTH = 50


@dataclass(frozen=True)
class YamlDocument:
    """Plain data (dicts, lists, scalars) and the 1-based line of every key and list item."""

    data: Any
    lines: dict[FieldPath, int]

    def line_of(self, path: FieldPath) -> int:
        """The line of `path`, or of its nearest ancestor that the file has (a missing field
        is reported on the line of the mapping that lacks it)."""
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return self.lines.get((), 1)


def parse_yaml(text: str, source: str) -> YamlDocument:
    """Parse `text` (named `source` in messages); raise SpecError with file:line on bad YAML."""
    with _garbage_collector_paused():
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as error:
            raise SpecError(source, [_syntax_problem(error, text)]) from None
        except yaml.YAMLError as error:  # unmarked: e.g. a control character in the stream
            problem = SpecProblem(f"invalid YAML: {error}", "fix the file")
            raise SpecError(source, [problem]) from None
        if root is None:
            return YamlDocument(None, {(): 1})
        builder = _Builder(source)
        data = builder.build(root, (), 0)
    builder.lines[()] = root.start_mark.line + 1
    return YamlDocument(data, builder.lines)


@contextlib.contextmanager
def _garbage_collector_paused() -> Iterator[None]:
    # Composing allocates a node per value and none of them form cycles, yet the collector's
    # repeated full passes over them doubled the parse time of a 5,000-node spec (measured).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _syntax_problem(error: yaml.MarkedYAMLError, text: str) -> SpecProblem:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else None
    context_line = error.context_mark.line + 1 if error.context_mark else None
    problem = error.problem or "syntax error"
    if "end of stream" in problem and context_line:
        # An unclosed quote or bracket is found at the end of the file; the fault is its start.
        line = context_line
    if mark is not None and _tab_near(text, mark):
        return SpecProblem(
            "invalid YAML: a tab character where YAML expects spaces",
            "indent with spaces, not tabs",
            line=line,
        )
    message = f"invalid YAML: {problem}"
    if error.context:
        where = f" on line {context_line}" if context_line and context_line != line else ""
        message += f" ({error.context}{where})"
    return SpecProblem(message, _syntax_fix(problem, context_line), line=line)


def _syntax_fix(problem: str, context_line: int | None) -> str:
    if "mapping values are not allowed" in problem:
        return "quote a value that contains ': ', or check the indentation of this line"
    if "end of stream" in problem:
        return "close the quote or bracket opened on this line"
    if "expected ',' or" in problem:
        return f"close the bracket opened on line {context_line} or separate items with ','"
    if "undefined alias" in problem:
        return "define the anchor (&name) before using the alias (*name)"
    if "another document" in problem:
        return "a spec is a single YAML document — remove the extra '---'"
    if "expected key" in problem or "block end" in problem or "indicator" in problem:
        return "check the indentation: keys of one mapping and the '- ' of one list must line up"
    return "fix the YAML syntax at that spot"


def _tab_near(text: str, mark: yaml.Mark) -> bool:
    lines = text.splitlines()
    if mark.line >= len(lines):
        return False
    line = lines[mark.line]
    indentation = line[: len(line) - len(line.lstrip(" \t"))]
    return "\t" in indentation or line[mark.column : mark.column + 1] == "\t"


class _Builder:
    """Turns composed nodes into data, recording lines and rejecting duplicate keys."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[FieldPath, int] = {}
        self.values_built = 0
        self._scalars = SafeConstructor()

    def build(self, node: yaml.Node, path: FieldPath, depth: int) -> Any:
        self.values_built += 1
        if self.values_built > MAX_VALUES or depth > MAX_DEPTH:
            self._fail(node, path, "the document is too large or too deeply nested", "simplify it")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return self._sequence(node, path, depth)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: FieldPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                continue
            key = self._key(key_node, path)
            line = key_node.start_mark.line + 1
            if key in first_line:
                self._fail(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first given on line {first_line[key]})",
                    "keep one of them: YAML would silently use only the last",
                )
            first_line[key] = line
            self.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key), depth + 1)
        for source_node in merged:
            self._merge(source_node, result, path, depth)
        return result

    def _merge(self, node: yaml.Node, into: dict[str, Any], path: FieldPath, depth: int) -> None:
        # `<<: *defaults` (or a list of them) supplies keys the mapping does not set itself.
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._fail(
                    source, path, "'<<' must merge a mapping", "use '<<: *anchor' on a mapping"
                )
            for key, value in self._mapping(source, path, depth).items():
                into.setdefault(key, value)

    def _sequence(self, node: yaml.SequenceNode, path: FieldPath, depth: int) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = item.start_mark.line + 1
            items.append(self.build(item, (*path, index), depth + 1))
        return items

    def _key(self, node: yaml.Node, path: FieldPath) -> str:
        if not isinstance(node, yaml.ScalarNode):
            self._fail(node, path, "a mapping key must be a plain word", "write it as 'key: value'")
        return node.value

    def _scalar(self, node: yaml.ScalarNode, path: FieldPath) -> Any:
        tag = node.tag
        if tag == _TAG + "str":
            return node.value
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return self._scalars.construct_yaml_bool(node)
        if tag == _TAG + "int":
            return self._scalars.construct_yaml_int(node)
        if tag == _TAG + "float":
            return self._scalars.construct_yaml_float(node)
        if tag == _TAG + "timestamp":
            # A spec has no dates; something that looks like one is meant as text.
            return node.value
        self._fail(
            node,
            path,
            f"unsupported YAML tag {tag!r}",
            "remove the tag: a spec holds only plain strings, numbers, booleans, lists and maps",
        )

    def _fail(self, node: yaml.Node, path: FieldPath, message: str, fix: str) -> NoReturn:
        line = node.start_mark.line + 1
        raise SpecError(self.source, [SpecProblem(message, fix, path, line)])
