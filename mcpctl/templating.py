"""The Jinja2 environment for mcpctl's templates, with filters that quote values safely."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE_DIR = Path(__file__).parent / "templates"

# Plain (unquoted) YAML is kept for values made only of these characters and that read back
# as the same string; anything else is written as a JSON string, which YAML reads verbatim.
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_./~@%+-][A-Za-z0-9_./~@%+:-]*\Z")


def to_json(value: Any) -> str:
    """A YAML-safe scalar or flow mapping: JSON is YAML, and ASCII-only JSON has no line
    breaks or other characters that YAML would reinterpret inside a quoted string."""
    return json.dumps(value, ensure_ascii=True, sort_keys=True)


def to_yaml(value: Any) -> str:
    """Like `to_json`, but leaves simple strings unquoted for files that people read."""
    if isinstance(value, str) and _reads_back_as_plain_string(value):
        return value
    return to_json(value)


def _reads_back_as_plain_string(value: str) -> bool:
    import yaml

    if not _PLAIN_SAFE.match(value) or value.endswith(":") or ": " in value:
        return False
    try:
        return yaml.safe_load(value) == value
    except yaml.YAMLError:
        return False


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # YAML, not HTML: quoting is done by the filters below
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["to_json"] = to_json
    env.filters["to_yaml"] = to_yaml
    return env


def render(template_name: str, **context: Any) -> str:
    return environment().get_template(template_name).render(**context)
