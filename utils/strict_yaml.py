"""YAML files validated by pydantic models, with errors a person can act on.

Both of the project's declarative files (bootstrap/manifest.yaml, bootstrap/experiments.yaml)
load through here, so a mistake in either is reported the same way: the file, the key path
with the key of each list item (`configs[1](security-agent).variations[0].provider`), what was
expected and what was found.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def read_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """The parsed YAML of `path`; `error` naming the file when it is unreadable or not YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise error(f"{path}: cannot read the {what}: {err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None


def key_path(loc: tuple[Any, ...], data: Any, skip: Collection[str] = ()) -> str:
    """A pydantic error location as a path through the file, labelling list items by key.

    `skip` names location parts that are not keys of the file (tags of a discriminated union).
    """
    parts: list[str] = []
    node = data
    previous: Any = None
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and ("key" in node or "name" in node):
                label += f"({node.get('key', node.get('name'))})"
            parts.append(label)
        elif item in skip and isinstance(previous, int):
            pass
        else:
            node = node.get(item) if isinstance(node, dict) else None
            parts.append(("." if parts else "") + str(item))
        previous = item
    return "".join(parts) or "<top level>"


def format_errors(path: Path, err: ValidationError, data: Any, what: str,
                  skip: Collection[str] = ()) -> str:
    """Every problem of `err`, one line each, under a heading naming the file."""
    lines = [f"{path}: {err.error_count()} problem(s) in the {what}:"]
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        got = "" if e["type"] == "missing" or isinstance(value, dict | list) else f" (got {value!r})"
        lines.append(f"  - {key_path(tuple(e['loc']), data, skip)}: {msg}{got}")
    return "\n".join(lines)


def validate(model: type[Model], data: Any, path: Path, error: type[Exception], what: str,
             skip: Collection[str] = ()) -> Model:
    """`model` validated from `data`; `error` with every problem named otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise error(format_errors(path, err, data, what, skip)) from None
