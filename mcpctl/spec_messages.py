"""Turn pydantic validation errors into one plain message per fault, with line and fix."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mcpctl.spec import ClusterSpec, SpecFault, SpecFaults
from mcpctl.specerror import FieldPath, SpecProblem, format_path
from mcpctl.yamlmap import YamlDocument

# What to write for a required field that is missing, by field name.
_REQUIRED_EXAMPLES = {
    "name": "name: <name>",
    "address": "address: <IP address or hostname>",
    "nodes": "nodes:\n  - {name: head, address: <IP>, role: head}",
}

_PORT_FIELDS = {
    "port",
    "dashboard_port",
    "client_port",
    "node_manager_port",
    "object_manager_port",
    "min_worker_port",
    "max_worker_port",
}


def problems_from_validation_error(
    error: ValidationError, document: YamlDocument
) -> list[SpecProblem]:
    details = _without_missing_fields_explained_by_typos(error.errors(include_url=False))
    problems: list[SpecProblem] = []
    for detail in details:
        problems.extend(_problems_from_detail(detail, document))
    return problems


def _without_missing_fields_explained_by_typos(details: list[ErrorDetails]) -> list[ErrorDetails]:
    # `adress: x` gives "unknown field 'adress'" and "address is missing": one fault, so keep
    # only the first message, which already suggests the right name.
    suggested: set[FieldPath] = set()
    for detail in details:
        if detail["type"] == "extra_forbidden":
            loc = tuple(detail["loc"])
            close = _closest_field(str(loc[-1]), loc[:-1])
            if close:
                suggested.add((*loc[:-1], close))
    return [
        detail
        for detail in details
        if not (detail["type"] == "missing" and tuple(detail["loc"]) in suggested)
    ]


def _problems_from_detail(detail: ErrorDetails, document: YamlDocument) -> list[SpecProblem]:
    loc: FieldPath = tuple(detail["loc"])
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]  # a bad dict key: its path is the key itself
    raised = (detail.get("ctx") or {}).get("error")
    if isinstance(raised, SpecFaults):
        return [_fault_problem(fault, loc, document) for fault in raised.faults]
    if isinstance(raised, SpecFault):
        return [_fault_problem(raised, loc, document)]
    message, fix = _describe(detail, loc)
    return [SpecProblem(message, fix, loc, document.line_of(loc))]


def _fault_problem(fault: SpecFault, loc: FieldPath, document: YamlDocument) -> SpecProblem:
    path = (*loc, *fault.path)
    # A related field that is only a default is not in the file and has no line.
    related = (*loc, *fault.related) if fault.related is not None else None
    related_line = document.lines.get(related) if related is not None else None
    return SpecProblem(
        fault.message, fault.fix, path, document.line_of(path), related_line, fault.after
    )


def _describe(detail: ErrorDetails, loc: FieldPath) -> tuple[str, str]:
    kind = detail["type"]
    value = detail.get("input")
    ctx = detail.get("ctx") or {}
    field = next((part for part in reversed(loc) if isinstance(part, str)), "")
    if kind == "missing":
        example = _REQUIRED_EXAMPLES.get(field, f"{field}: ...")
        return "required field is missing", f"add '{example}'"
    if kind == "extra_forbidden":
        return _unknown_field(loc)
    if kind in ("greater_than_equal", "less_than_equal") and field in _PORT_FIELDS:
        return f"port {value} is out of range", "use a port number from 1 to 65535"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        relation = "at least" if kind == "greater_than_equal" else "at most"
        return f"{value!r} is out of range", f"use a number {relation} {bound}"
    if kind == "literal_error":
        return f"{_shown(value)} is not allowed", f"use {ctx.get('expected')}"
    if kind == "too_short" and field == "nodes":
        return "the node list is empty", "list at least one node, with 'role: head'"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{_shown(value)} is not a whole number", _number_fix(field)
    if kind in ("bool_type", "bool_parsing"):
        return f"{_shown(value)} is not true or false", "write true or false"
    if kind in ("string_type", "string_sub_type"):
        return f"expected text, got {_described(value)}", "put the value in quotes"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return (
            f"expected a mapping of fields, got {_described(value)}",
            f"write '{field}:' followed by indented 'key: value' lines",
        )
    if kind == "list_type":
        return f"expected a list, got {_described(value)}", "write each item on its own '- ' line"
    return detail["msg"], "see docs/spec.md for what this field accepts"


def _unknown_field(loc: FieldPath) -> tuple[str, str]:
    unknown = str(loc[-1])
    model = _model_at(loc[:-1])
    allowed = list(model.model_fields) if model else []
    message = f"unknown field {unknown!r}"
    close = _closest_field(unknown, loc[:-1])
    hint = f"did you mean {close!r}? " if close else "remove it; "
    parent = format_path(loc[:-1]) or "the top level"
    return message, f"{hint}allowed in {parent}: {', '.join(allowed)}"


def _closest_field(unknown: str, parent: FieldPath) -> str | None:
    model = _model_at(parent)
    if model is None:
        return None
    close = difflib.get_close_matches(unknown, list(model.model_fields), n=1, cutoff=0.6)
    return close[0] if close else None


def _model_at(path: FieldPath) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path` (list indexes skipped)."""
    model: type[BaseModel] = ClusterSpec
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field else None
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _number_fix(field: str) -> str:
    if field in _PORT_FIELDS:
        return "use a port number from 1 to 65535, without quotes"
    return "use a whole number, without quotes"


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value)


def _described(value: Any) -> str:
    """`a number (5)`, `a list`: the kind of a wrong value, with the value when it is short."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({_shown(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"text ({value!r})"
    return _shown(value) if isinstance(value, (dict, list)) else type(value).__name__
