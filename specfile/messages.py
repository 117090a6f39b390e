"""Turn pydantic validation errors into one plain message per fault, with line and fix.

The root model is a parameter: the cluster spec and agents.yaml report their faults alike.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from specfile.errors import FieldPath, SpecFault, SpecFaults, SpecProblem, format_path
from specfile.yamlmap import YamlDocument

# What to write for a required field that is missing, by field name.
_REQUIRED_EXAMPLES = {
    "name": "name: <name>",
    "address": "address: <IP address or hostname>",
    "nodes": "nodes: [{name: head, address: <IP>, role: head}]",
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
    error: ValidationError, document: YamlDocument, root: type[BaseModel]
) -> list[SpecProblem]:
    details = error.errors(include_url=False)
    typos = _typo_suggestions(details, root)
    problems: list[SpecProblem] = []
    missing: dict[FieldPath, list[str]] = {}
    for detail in details:
        loc = tuple(detail["loc"])
        if detail["type"] == "missing":
            # Unless "unknown field 'adress' — did you mean 'address'?" explains it already.
            if loc not in typos.values():
                missing.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        problems.extend(_problems_from_detail(detail, document, typos, root))
    for parent, names in missing.items():
        problems.append(_missing_fields(parent, names, document))
    return _one_per_field(problems)


def _missing_fields(parent: FieldPath, names: list[str], document: YamlDocument) -> SpecProblem:
    examples = " and ".join(f"'{_REQUIRED_EXAMPLES.get(name, name + ': ...')}'" for name in names)
    if len(names) == 1:
        return SpecProblem(
            "required field is missing",
            f"add {examples}",
            (*parent, names[0]),
            document.line_of(parent),
        )
    fields = " and ".join(repr(name) for name in names)
    return SpecProblem(
        f"required fields {fields} are missing",
        f"add {examples}",
        parent,
        document.line_of(parent),
    )


def _typo_suggestions(
    details: list[ErrorDetails], root: type[BaseModel]
) -> dict[FieldPath, FieldPath]:
    """{path of an unknown field: path of the field it probably meant}.

    A misspelt required field gives two errors (unknown 'adress', missing 'address') for
    one fault. Pair them by spelling, or, when a mapping has exactly one unknown and one
    missing field left, with each other (`n: node1` for `name: node1`).
    """
    unknown: dict[FieldPath, list[str]] = {}
    missing: dict[FieldPath, list[str]] = {}
    for detail in details:
        loc = tuple(detail["loc"])
        if detail["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
        elif detail["type"] == "missing":
            missing.setdefault(loc[:-1], []).append(str(loc[-1]))
    suggestions: dict[FieldPath, FieldPath] = {}
    for parent, names in unknown.items():
        model = _model_at(root, parent)
        allowed = _field_names(model) if model else []
        unmatched_missing = list(missing.get(parent, []))
        unmatched_unknown = []
        for name in names:
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            if close:
                suggestions[(*parent, name)] = (*parent, close[0])
                if close[0] in unmatched_missing:
                    unmatched_missing.remove(close[0])
            elif parent or not _sections_with_field(root, name):  # else: a line indented too little
                unmatched_unknown.append(name)
        if len(unmatched_unknown) == 1 and len(unmatched_missing) == 1:
            suggestions[(*parent, unmatched_unknown[0])] = (*parent, unmatched_missing[0])
    return suggestions


def _one_per_field(problems: list[SpecProblem]) -> list[SpecProblem]:
    # `{rack:a}` is a bad key *and* a null value at one path: one fault, one message.
    seen: set[FieldPath] = set()
    kept = []
    for problem in problems:
        if problem.path not in seen or not problem.path:
            seen.add(problem.path)
            kept.append(problem)
    return kept


def _problems_from_detail(
    detail: ErrorDetails,
    document: YamlDocument,
    typos: dict[FieldPath, FieldPath],
    root: type[BaseModel],
) -> list[SpecProblem]:
    loc: FieldPath = tuple(detail["loc"])
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]  # a bad dict key: its path is the key itself
    raised = (detail.get("ctx") or {}).get("error")
    if isinstance(raised, SpecFaults):
        return [_fault_problem(fault, loc, document) for fault in raised.faults]
    if isinstance(raised, SpecFault):
        return [_fault_problem(raised, loc, document)]
    if detail["type"] == "extra_forbidden":
        message, fix = _unknown_field(root, loc, typos.get(loc))
    else:
        message, fix = _describe(detail, loc, _reference(root))
    return [SpecProblem(message, fix, loc, document.line_of(loc))]


def _fault_problem(fault: SpecFault, loc: FieldPath, document: YamlDocument) -> SpecProblem:
    path = (*loc, *fault.path)
    # A related field that is only a default is not in the file and has no line.
    related = (*loc, *fault.related) if fault.related is not None else None
    related_line = document.lines.get(related) if related is not None else None
    return SpecProblem(
        fault.message, fault.fix, path, document.line_of(path), related_line, fault.after
    )


def _describe(detail: ErrorDetails, loc: FieldPath, reference: str) -> tuple[str, str]:
    kind = detail["type"]
    value = detail.get("input")
    ctx = detail.get("ctx") or {}
    field = next((part for part in reversed(loc) if isinstance(part, str)), "")
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
    return detail["msg"], f"see {reference} for what this field accepts"


def _reference(root: type[BaseModel]) -> str:
    """Where the file format is documented: the root model's SPEC_REFERENCE class variable."""
    return getattr(root, "SPEC_REFERENCE", "the documentation of this file")


def _unknown_field(
    root: type[BaseModel], loc: FieldPath, meant: FieldPath | None
) -> tuple[str, str]:
    unknown = str(loc[-1])
    parent = loc[:-1]
    model = _model_at(root, parent)
    allowed = ", ".join(_field_names(model)) if model else ""
    where = format_path(parent) or "the top level"
    message = f"unknown field {unknown!r}"
    if meant is not None:
        return message, f"did you mean {meant[-1]!r}? (allowed in {where}: {allowed})"
    sections = _sections_with_field(root, unknown) if not parent else []
    if sections:
        under = " or ".join(f"'{section}:'" for section in sections)
        return f"{message} at the top level", f"it belongs under {under}: indent it there"
    return message, f"remove it (allowed in {where}: {allowed})"


def _sections_with_field(root: type[BaseModel], name: str) -> list[str]:
    """Top-level sections whose model has field `name` (for a line indented too little)."""
    sections = []
    for section, field in root.model_fields.items():
        model = _model_in(field.annotation)
        if model is not None and name in _field_names(model):
            is_list = typing.get_origin(field.annotation) is list
            sections.append(f"{section}[]" if is_list else section)
    return sections


def _model_at(root: type[BaseModel], path: FieldPath) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path` (list indexes skipped)."""
    model: type[BaseModel] = root
    for part in path:
        if isinstance(part, int):
            continue
        field = _fields_as_written(model).get(part)
        inner = _model_in(field.annotation) if field else None
        if inner is None:
            return None
        model = inner
    return model


def _fields_as_written(model: type[BaseModel]) -> dict[str, Any]:
    """The model's fields under the names a file uses for them (an alias where one is set)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(_fields_as_written(model))


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
